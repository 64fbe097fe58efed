"""Starting certmgr costs only what the command needs.

`certmgr --version` answers from the argument parser alone; the commands a monitoring system or
a cron job runs often (`status --json`, `renew` with nothing due, `metrics`, `validate`) never
import the ACME client, HTTP, DNS, calendar or terminal libraries, which only some commands use.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import certmgr

#: libraries that only some commands use (ACME issuance, DNS checks, calendars, tables on a terminal)
HEAVY = ("acme", "josepy", "requests", "dns", "icalendar", "rich")


def modules_after(argv: list[str]) -> tuple[int, str, set[str]]:
    """(exit code, stdout, top-level modules imported) of ``certmgr ARGV`` in a fresh interpreter."""
    probe = (
        "import io, json, sys, contextlib\n"
        "from certmgr.cli import main\n"
        "buf = io.BytesIO()\n"
        "out = io.TextIOWrapper(buf, encoding='utf-8', write_through=True)\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try:\n"
        f"        code = main({argv!r})\n"
        "    except SystemExit as e:\n"
        "        code = e.code\n"
        "out.flush()\n"
        "print(json.dumps([code, buf.getvalue().decode(), sorted({m.split('.')[0] for m in sys.modules})]))\n"
    )
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    code, out, modules = json.loads(r.stdout.splitlines()[-1])
    return int(code or 0), str(out), set(modules)


def test_version_prints_the_version_and_imports_nothing_else() -> None:
    code, out, modules = modules_after(["--version"])
    assert code == 0 and out.strip() == f"certmgr {certmgr.__version__}"
    assert not modules & {"sqlalchemy", "sqlmodel", "cryptography", *HEAVY}, sorted(modules)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "certmgr.toml"
    path.write_text(f"""
[certmgr]
state_dir = "{tmp_path / 'state'}"

[issuer.corp]
type = "manual"

[notify.ops]
type = "email"
smtp = "127.0.0.1:9"
from = "certmgr@example.com"
to = ["ops@example.com"]

[[mta]]
hostname = "mx1.example.com"
issuer = "corp"
notify = ["ops"]
""")
    return path


@pytest.mark.parametrize("argv", [["status", "--json"], ["renew", "--json"], ["renew", "--dry-run"],
                                  ["metrics"], ["validate"]])
def test_frequent_commands_do_not_import_what_they_do_not_use(config: Path, argv: list[str]) -> None:
    modules_after(["-c", str(config), "renew", "--json"])  # the state dir and the database exist from now on
    code, _out, modules = modules_after(["-c", str(config), *argv])
    assert code == 0
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))
