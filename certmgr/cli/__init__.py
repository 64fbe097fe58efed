"""``certmgr [-c CONFIG] COMMAND``: the command line.

Only argparse is imported up front; each command module (and with it SQLAlchemy,
the ACME client, the scheduler) is imported when that command runs, so
``certmgr --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from certmgr import __version__
from certmgr.errors import CertmgrError, ConfigErrors

#: command -> (module under certmgr.cli, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("cmd_validate", "load and check the config"),
    "status": ("cmd_status", "one row per managed certificate"),
    "renew": ("cmd_renew", "renew what is due (or named/forced), deploy, verify"),
    "deploy": ("cmd_deploy", "(re)deploy the current certificates and verify them over STARTTLS"),
    "check": ("cmd_check", "STARTTLS probe (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)"),
    "audit": ("cmd_audit", "read each MTA's effective TLS settings; is opportunistic TLS on for everyone?"),
    "partners": ("cmd_partners", "probe partners' MX hosts: does each meet its required TLS level (exit as check)"),
    "csr": ("cmd_manual", "print the CSR for a host whose CA has no ACME"),
    "import": ("cmd_manual", "import a certificate issued for `certmgr csr` (checked first)"),
    "revoke": ("cmd_revoke", "revoke the current certificate of a host"),
    "providers": ("cmd_providers", "list registered providers"),
    "remind": ("cmd_remind", "send the reminders that are due now"),
    "calendar": ("cmd_calendar", "iCalendar feed of expiry and renewal events"),
    "metrics": ("cmd_metrics", "Prometheus text format (for the textfile collector)"),
    "run": ("cmd_run", "the daemon: renew, probe, remind on a schedule"),
    "collect": ("cmd_collect", "read what is new in the mail logs and TLS reports of [monitor]"),
    "report": ("cmd_report", "how much mail used TLS, and at what trust level (collects first)"),
    "recover": ("cmd_recover", "rebuild the inventory from the state directory after the database was lost"),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="certmgr", description="Certificate lifecycle manager for mail servers."
    )
    p.add_argument("-c", "--config", help="config file (default $CERTMGR_CONFIG or /etc/certmgr/certmgr.toml)")
    p.add_argument("-v", "--verbose", action="store_true", help="log each step to stderr")
    p.add_argument("--version", action="version", version=f"certmgr {__version__}")
    return p


def _command(argv: Sequence[str]) -> str | None:
    """The command named on the command line (the first word after the global options)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("-c", "--config")
    pre.add_argument("-v", "--verbose", action="store_true")
    pre.add_argument("command", nargs="?")
    pre.add_argument("rest", nargs=argparse.REMAINDER)
    known, _ = pre.parse_known_args(argv)
    return known.command if known.command in COMMANDS else None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line.  Only the named command's module is imported, to add its
    arguments (``add_arguments``); ``certmgr --help`` lists the commands from :data:`COMMANDS`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p = _parser()
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    command = _command(argv)
    for name, (module, help_) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        if name == command:
            importlib.import_module(f"certmgr.cli.{module}").add_arguments(sp, name)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)  # --help and --version exit here, before logging is imported
    import logging
    import warnings

    # CAs write a CN longer than the 64 characters X.509 allows when the only name is that long;
    # cryptography then warns at every read of the subject, which would reach cron mail and journald
    warnings.filterwarnings("ignore", message="Attribute's length must be", category=UserWarning)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    module = importlib.import_module(f"certmgr.cli.{COMMANDS[args.command][0]}")
    try:
        return int(module.run(args))
    except ConfigErrors as e:
        for err in e.errors:
            print(f"certmgr {args.command}: error: {err}", file=sys.stderr)
        print(f"certmgr {args.command}: {len(e.errors)} errors in the config", file=sys.stderr)
        return e.exit_code
    except CertmgrError as e:
        print(f"certmgr {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("certmgr: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    sys.exit(main())
