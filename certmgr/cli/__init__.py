"""``certmgr [-c CONFIG] COMMAND``: the command line.

Only argparse is imported up front; each command module (and with it SQLAlchemy,
the ACME client, the scheduler) is imported when that command runs, so
``certmgr --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from certmgr import __version__
from certmgr.errors import CertmgrError

#: command -> (module under certmgr.cli, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("cmd_validate", "load and check the config"),
    "status": ("cmd_status", "one row per managed certificate"),
    "renew": ("cmd_renew", "renew what is due (or named/forced), deploy, verify"),
    "deploy": ("cmd_deploy", "(re)deploy the current certificates and verify them over STARTTLS"),
    "check": ("cmd_check", "STARTTLS probe (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)"),
    "csr": ("cmd_manual", "print the CSR for a host whose CA has no ACME"),
    "import": ("cmd_manual", "import a certificate issued for `certmgr csr` (checked first)"),
    "revoke": ("cmd_revoke", "revoke the current certificate of a host"),
    "providers": ("cmd_providers", "list registered providers"),
    "remind": ("cmd_remind", "send the reminders that are due now"),
    "calendar": ("cmd_calendar", "iCalendar feed of expiry and renewal events"),
    "metrics": ("cmd_metrics", "Prometheus text format (for the textfile collector)"),
    "run": ("cmd_run", "the daemon: renew, probe, remind on a schedule"),
    "recover": ("cmd_recover", "rebuild the inventory from the state directory after the database was lost"),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="certmgr", description="Certificate lifecycle manager for mail servers."
    )
    p.add_argument("-c", "--config", help="config file (default $CERTMGR_CONFIG or /etc/certmgr/certmgr.toml)")
    p.add_argument("-v", "--verbose", action="store_true", help="log each step to stderr")
    p.add_argument("--version", action="version", version=f"certmgr {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_mod, help_) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        _add_args(name, sp)
    return p


def _add_args(name: str, sp: argparse.ArgumentParser) -> None:
    if name == "status":
        sp.add_argument("--json", action="store_true", help="print a JSON array")
    elif name == "renew":
        sp.add_argument("hosts", nargs="*", metavar="HOST")
        sp.add_argument("--force", action="store_true", help="renew even if not due")
        sp.add_argument("--dry-run", action="store_true", help="say what would be renewed; change nothing")
        sp.add_argument("--json", action="store_true", help="print the outcome as JSON")
    elif name == "deploy":
        sp.add_argument("hosts", nargs="*", metavar="HOST")
        sp.add_argument("--json", action="store_true", help="print the outcome as JSON")
    elif name == "check":
        sp.add_argument("targets", nargs="*", metavar="HOST[:PORT]")
        sp.add_argument("--json", action="store_true", help="print a JSON array")
    elif name == "csr":
        sp.add_argument("host", metavar="HOST")
        sp.add_argument("--key", choices=["rsa", "ecdsa"], help="for dual MTAs: which key's CSR (default: all)")
        sp.add_argument("--force", action="store_true", help="also for an MTA whose issuer is not manual")
    elif name == "import":
        sp.add_argument("host", metavar="HOST")
        sp.add_argument("file", metavar="FILE", help="PEM certificate followed by its chain")
        sp.add_argument("--force", action="store_true",
                        help="also for an MTA whose issuer is not manual, and over a longer-lived certificate")
    elif name == "remind":
        sp.add_argument("--dry-run", action="store_true", help="list what is due and queued; send nothing")
        sp.add_argument("--json", action="store_true", help="print the outcome as JSON")
    elif name == "recover":
        sp.add_argument("--json", action="store_true", help="print what was recovered as JSON")
    elif name in ("calendar", "metrics"):
        sp.add_argument("-o", "--output", metavar="FILE", help="write FILE atomically (default: stdout)")
    elif name == "revoke":
        sp.add_argument("host", metavar="HOST")
        sp.add_argument("--reason", default="unspecified",
                        choices=["unspecified", "keyCompromise", "affiliationChanged", "superseded",
                                 "cessationOfOperation"])


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    module = importlib.import_module(f"certmgr.cli.{COMMANDS[args.command][0]}")
    try:
        return int(module.run(args))
    except CertmgrError as e:
        print(f"certmgr {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("certmgr: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    sys.exit(main())
