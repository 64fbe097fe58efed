"""A value that `certmgr validate` accepts works through the command that uses it; one that
cannot work is refused by `validate`, naming the file, the table and the key.  Real peers:
aiosmtpd (STARTTLS) for notifiers and the trust file of `check`."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Cli
from tests.peers.smtpd import SmtpServer
from tests.peers.util import free_port

pytestmark = pytest.mark.integration


def config(tmp_path: Path, body: str, *, head: str = "") -> Path:
    path = tmp_path / "certmgr.toml"
    path.write_text(f'[certmgr]\nstate_dir = "{tmp_path / "state"}"\n{head}\n{body}')
    return path


#: an ACME CA that is not there: every renewal fails, and the failure is notified
DEAD_CA = f"""
[issuer.ca]
type = "acme"
directory = "https://127.0.0.1:{free_port()}/dir"
contact = ["mailto:postmaster@example.com"]
timeout = 5
challenge = {{ type = "http-01", mode = "standalone", address = "127.0.0.1", port = {free_port()} }}
"""


@pytest.mark.parametrize("to", ['"Ops\\r\\n <ops@example.com>"', '"ops@example.com\\r\\nBcc: all@example.com"',
                                '"ops@example.com, evil@example.com"', '"ops@exämple.com"'])
def test_notifier_address_that_cannot_be_sent_is_refused_at_validate(tmp_path: Path, smtpd: SmtpServer,
                                                                     to: str) -> None:
    path = config(tmp_path, DEAD_CA + smtpd.notify_toml("ops", to) + smtpd.notify_toml("all", '"all@example.com"')
                  + '[[mta]]\nhostname = "mx1.example.com"\nissuer = "ca"\nnotify = ["ops", "all"]\n',
                  head=f'trust = "{smtpd.ca_file}"')
    r = Cli(path)("validate", check=2)
    assert f"{path}:" in r.stderr and "[notify.ops] to" in r.stderr and "not an e-mail address" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_one_broken_notification_never_blocks_the_others(tmp_path: Path, smtpd: SmtpServer) -> None:
    path = config(tmp_path, DEAD_CA + smtpd.notify_toml("ops", '"Mail Ops <ops@example.com>"')
                  + smtpd.notify_toml("all", '"all@example.com"')
                  + '[[mta]]\nhostname = "mx1.example.com"\nissuer = "ca"\nnotify = ["ops", "all"]\n',
                  head=f'trust = "{smtpd.ca_file}"')
    cli = Cli(path)
    cli("validate")
    smtpd.stop()
    r = cli("renew", check=1)  # the CA is not there; the notices stay queued, the mail server is down too
    assert "Traceback" not in r.stderr
    # the first queued notice is damaged (as by a bug or an older version): it must not stop the second
    db = sqlite3.connect(tmp_path / "state" / "certmgr.db")
    with db:
        rows = db.execute("SELECT id, notifier FROM reminder WHERE sent_at IS NULL ORDER BY id").fetchall()
        assert [n for _, n in rows] == ["ops", "all"], rows
        db.execute("UPDATE reminder SET payload = '{not json' WHERE id = ?", (rows[0][0],))
    db.close()
    smtpd.start()
    r = cli("remind", check=None)
    assert "Traceback" not in r.stderr, r.stderr
    assert [m.rcpt_tos for m in smtpd.messages] == [["all@example.com"]], r.stdout + r.stderr
    assert "ops" in r.stdout + r.stderr


def test_trust_file_that_is_not_pem_is_refused_at_validate(tmp_path: Path) -> None:
    bad = tmp_path / "roots.pem"
    bad.write_bytes(b"\x00\x01 this is a DER blob or a key, not a PEM certificate\n")
    path = config(tmp_path, '[issuer.corp]\ntype = "manual"\n', head=f'trust = "{bad}"')
    r = Cli(path)("validate", check=2)
    assert f"{path}:3 [certmgr] trust" in r.stderr and "not a PEM file of certificates" in r.stderr, r.stderr


def test_check_with_a_trust_file_broken_after_validate_is_unknown(tmp_path: Path, smtpd: SmtpServer) -> None:
    trust = tmp_path / "roots.pem"
    trust.write_bytes(smtpd.ca_file.read_bytes())
    path = config(tmp_path, '[issuer.corp]\ntype = "manual"\n', head=f'trust = "{trust}"')
    cli = Cli(path)
    cli("validate")
    assert cli("check", f"127.0.0.1:{smtpd.port}", check=None).returncode in (0, 1, 2)
    trust.write_bytes(b"garbage\n")  # replaced by a careless edit between validate and the next check
    r = cli("check", f"127.0.0.1:{smtpd.port}", check=3)
    assert "UNKNOWN" in r.stderr and str(trust) in r.stderr and "Traceback" not in r.stderr, r.stderr


def _state_case(tmp_path: Path, case: str) -> Path:
    state = tmp_path / "state"
    if case == "foreign":
        state.mkdir(mode=0o755)
        (state / "index.html").write_text("somebody's web root\n")
    elif case == "group_writable":
        state.mkdir()
        state.chmod(0o770)
    elif case == "symlink":
        (tmp_path / "real").mkdir(mode=0o700)
        state.symlink_to(tmp_path / "real")
    elif case == "file":
        state.write_text("")
    return state


@pytest.mark.parametrize("case, phrase", [
    ("foreign", "holds files that are not certmgr's (index.html)"),
    ("group_writable", "writable by group or others (mode 0770)"),
    ("symlink", "is a symbolic link"),
    ("file", "is not a directory"),
])
def test_unsafe_or_foreign_state_dir_is_refused_never_changed(tmp_path: Path, case: str, phrase: str) -> None:
    state = _state_case(tmp_path, case)
    before = state.lstat()
    cli = Cli(config(tmp_path, '[issuer.corp]\ntype = "manual"\n[[mta]]\nhostname = "mx1.example.com"\n'
                               'issuer = "corp"\n'))
    for command in (["status"], ["renew"], ["run"]):
        r = cli(*command, check=2, timeout=30)
        assert phrase in r.stderr and str(state) in r.stderr and "Traceback" not in r.stderr, r.stderr
    after = state.lstat()
    assert (after.st_mode, after.st_uid) == (before.st_mode, before.st_uid), "the directory was not changed"
    if case == "foreign":
        assert sorted(p.name for p in state.iterdir()) == ["index.html"]


def test_new_state_dir_is_made_0700_and_used_again(tmp_path: Path) -> None:
    cli = Cli(config(tmp_path, '[issuer.corp]\ntype = "manual"\n[[mta]]\nhostname = "mx1.example.com"\n'
                               'issuer = "corp"\n'))
    cli("status")
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
    cli("status")  # its own directory, with its database in it, is accepted


GOOD = '[issuer.corp]\ntype = "manual"\n\n[[mta]]\nhostname = "mx1.example.com"\nissuer = "corp"\n'


def _odd_config(tmp_path: Path, case: str) -> Path:
    path = tmp_path / "certmgr.toml"
    head = f'[certmgr]\nstate_dir = "{tmp_path / "state"}"\n'
    if case == "directory":
        path.mkdir()
    elif case == "fifo":
        os.mkfifo(path)
    elif case == "device":
        return Path("/dev/zero")
    elif case == "not_utf8":
        path.write_bytes((head + GOOD).encode() + b'# caf\xe9 latin-1 comment\n')
    elif case == "bom":
        path.write_bytes(b"\xef\xbb\xbf" + (head + GOOD).encode())
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "huge":
        path.write_bytes((head + GOOD).encode() + b"#" * (2 << 20) + b"\n")
    return path


@pytest.mark.parametrize("case, phrase, line", [
    ("directory", "is a directory", None),
    ("fifo", "is not a regular file", None),
    ("device", "is not a regular file", None),
    ("not_utf8", "is not UTF-8: byte 0xe9", 9),
    ("empty", "is empty", None),
    ("huge", "a config file is at most 1048576 bytes", None),
])
def test_odd_config_file_fails_fast_naming_it(tmp_path: Path, case: str, phrase: str, line: int | None) -> None:
    path = _odd_config(tmp_path, case)
    started = time.monotonic()
    r = Cli(path)("validate", check=2, timeout=20)
    assert time.monotonic() - started < 10, "failed fast (a FIFO is never waited on)"
    assert r.stderr.startswith(f"certmgr: {path}" + (f":{line}" if line else "")) or \
        f"{path}" + (f":{line}" if line else "") in r.stderr, r.stderr
    assert phrase in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "state").exists(), "nothing was written"


def test_config_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """Editors on some systems begin UTF-8 files with a BOM: accepted and dropped, as TOML tools do."""
    path = _odd_config(tmp_path, "bom")
    r = Cli(path)("validate")
    assert "OK (1 MTAs" in r.stdout, r.stdout


# ---------------------------------------------------------------- one row per kind of value
# Each row: a value `certmgr validate` accepts, and the command that uses it, which must
# then work (exit code, and what it shows).  Values refused at validate are in the
# corpus (tests/corpus/configs); values that need a CA, an MTA or a mail server have
# their own tests above and in tests/e2e/test_validated_values.py.

def _csr_names(stdout: str) -> list[str]:
    from cryptography import x509
    csr = x509.load_pem_x509_csr(stdout.encode())
    return list(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                .get_values_for_type(x509.DNSName))


def _mta(hostname: str = "mx1.example.com", extra: str = "") -> str:
    return f'[issuer.corp]\ntype = "manual"\n\n[[mta]]\nhostname = "{hostname}"\nissuer = "corp"\n{extra}'


LONG_HOST = "mx-" + "b" * 55 + ".example.com"
CLOSED = free_port()
KINDS: list[tuple[str, str, str, list[str], int, str]] = [
    # (kind, [certmgr] lines, tables, command, exit code, text expected in stdout)
    ("hostname: upper case and trailing dot", "", _mta("MX1.Example.COM."), ["status"], 0, "mx1.example.com"),
    ("hostname: longer than a CN", "", _mta(LONG_HOST), ["csr", LONG_HOST], 0, "BEGIN CERTIFICATE REQUEST"),
    ("hostname: internationalized", "", _mta("mx1.bücher.example"), ["csr", "mx1.xn--bcher-kva.example"], 0,
     "BEGIN CERTIFICATE REQUEST"),
    ("names: wildcard and a duplicate of the hostname", "",
     _mta(extra='names = ["*.example.com", "MX1.example.com"]\n'), ["csr", "mx1.example.com"], 0, "REQUEST"),
    ("key: spaces and capitals", "", _mta(extra='key = [" ECDSA-P384 ", "RSA-3072"]\n'),
     ["status"], 0, "ecdsa"),
    ("state_dir: relative, with a space", 'state_dir = "rel state"', _mta(), ["status"], 0, "mx1.example.com"),
    ("database: sqlite file in a directory with a space", 'database = "sqlite:///{tmp}/db dir/c.db"', _mta(),
     ["status"], 0, "mx1.example.com"),
    ("smtp: bare IPv6 address", "", _mta(extra='smtp = "::1"\n'), ["status"], 0, "mx1.example.com"),
    ("smtp: bracketed IPv6 with port", "", _mta(extra=f'smtp = "[::1]:{CLOSED}"\n'),
     ["check", "mx1.example.com"], 1, f"[::1]:{CLOSED}"),
    ("resolver: bare IPv6 address", 'resolver = "::1"', _mta(), ["status"], 0, "mx1.example.com"),
    ("concurrency: 1", "concurrency = 1", _mta(), ["renew"], 0, "manual"),
    ("warning/critical days: 0", "warning_days = 0\ncritical_days = 0", _mta(), ["status"], 0, "mx1.example.com"),
    ("renew_before: 365", "", _mta(extra="renew_before = 365\n"), ["renew", "--dry-run"], 0, "mx1.example.com"),
    ("notify reminders: none", "", _mta(extra='notify = ["ops"]\n') + '\n[notify.ops]\ntype = "email"\n'
     'smtp = "127.0.0.1:25"\nfrom = "Zertifikatsdienst Öffentlich <certmgr@example.com>"\nto = ["ops@example.com"]\n'
     "reminders = []\n", ["remind"], 0, "no reminders due"),
    ("daemon intervals: the largest", "", _mta() + "\n[daemon]\nrenew_interval = 604800\nprobe_interval = 0\n"
     "ari_interval = 0\nremind_interval = 604800\n", ["validate"], 0, "OK (1 MTAs"),
]


@pytest.mark.parametrize("kind, settings, tables, command, code, shown", KINDS, ids=[k[0] for k in KINDS])
def test_every_kind_of_value_that_validates_works(tmp_path: Path, kind: str, settings: str, tables: str,
                                                  command: list[str], code: int, shown: str) -> None:
    state = 'state_dir = "rel state"' if "state_dir" in settings else f'state_dir = "{tmp_path / "state"}"'
    head = "\n".join(line for line in settings.format(tmp=tmp_path).splitlines() if "state_dir" not in line)
    path = tmp_path / "certmgr.toml"
    path.write_text(f"[certmgr]\n{state}\n{head}\n\n{tables}")
    (tmp_path / "db dir").mkdir(mode=0o700)
    cli = Cli(path)
    cli("validate")
    r = cli(*command, check=None, timeout=60)
    assert r.returncode == code and "Traceback" not in r.stderr, f"{kind}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    assert shown in r.stdout + r.stderr, f"{kind}:\n{r.stdout}\n{r.stderr}"
    if command[0] == "csr":
        names = _csr_names(r.stdout)
        assert command[1] in names and len(names) == len(set(names)), names
    if "state_dir" in settings:
        assert (tmp_path / "rel state").stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("case, phrase", [
    ("fifo", "is not a regular file"),
    ("not_utf8", "is not UTF-8 text"),
    ("directory", "is not a regular file"),
])
def test_odd_secret_file_fails_fast_naming_the_key(tmp_path: Path, case: str, phrase: str) -> None:
    secret = tmp_path / "smtp.pass"
    if case == "fifo":
        os.mkfifo(secret)
    elif case == "not_utf8":
        secret.write_bytes(b"p\xe4ssword\n")
    else:
        secret.mkdir()
    path = config(tmp_path, '[notify.ops]\ntype = "email"\nsmtp = "127.0.0.1:587"\nfrom = "certmgr@example.com"\n'
                            f'to = ["ops@example.com"]\nusername = "certmgr"\npassword_file = "{secret}"\n')
    started = time.monotonic()
    r = Cli(path)("validate", check=2, timeout=20)
    assert time.monotonic() - started < 10
    assert "[notify.ops] password_file" in r.stderr and phrase in r.stderr and "Traceback" not in r.stderr, r.stderr
