"""What display-only commands and the config load import: no ORM.

Importing SQLAlchemy and SQLModel costs more than half of a short command's time.  Loading the
config (and so `validate`) never needs them; `status` and `metrics` read an SQLite database at
the current schema through the standard library's driver (:mod:`certmgr.store.rows`).  Each
check runs in a fresh interpreter, where ``sys.modules`` says what was imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from certmgr.cli.common import print_json
from tests.peers.testca import manual_ca_config
from tests.unit.test_cli_start import modules_after

ORM = {"sqlalchemy", "sqlmodel", "alembic"}


def imported_by(statement: str) -> set[str]:
    """Top-level modules imported after running ``statement`` in a fresh interpreter."""
    probe = f"import json, sys\n{statement}\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))\n"
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return set(json.loads(r.stdout.splitlines()[-1]))


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return manual_ca_config(tmp_path, '\n[[mta]]\nhostname = "mx1.example.com"\nissuer = "corp"\nnotify = ["ops"]\n')


def test_loading_the_config_imports_no_orm(config: Path) -> None:
    modules = imported_by(f"from certmgr.config.load import load_config\nload_config({str(config)!r})")
    assert not modules & ORM, sorted(modules & ORM)


def test_validate_imports_no_orm(config: Path) -> None:
    code, out, modules = modules_after(["-c", str(config), "validate"])
    assert code == 0 and "OK (1 MTAs" in out
    assert not modules & ORM, sorted(modules & ORM)


@pytest.mark.parametrize("argv", [["status", "--json"], ["metrics"]])
def test_display_only_commands_import_no_orm(config: Path, argv: list[str]) -> None:
    modules_after(["-c", str(config), "renew", "--json"])  # the database exists, at the current schema
    code, out, modules = modules_after(["-c", str(config), *argv])
    assert code == 0 and "mx1.example.com" in out
    assert not modules & ORM, sorted(modules & ORM)


@pytest.mark.parametrize("argv", [["status", "--json"], ["metrics"]])
def test_display_only_commands_with_monitor_and_partners_import_no_orm(tmp_path: Path, argv: list[str]) -> None:
    """The mail TLS figures of ``[monitor]`` and the partner checks of ``[[partner]]`` are read
    through the same read path as the certificates."""
    from certmgr.store import Store
    from certmgr.times import utcnow
    from tests.unit.test_practice_rows import seed_practices

    (tmp_path / "mail.log").touch()
    monitor = f'[monitor]\nlogs = [{{ type = "postfix", path = "{tmp_path / "mail.log"}" }}]\n'
    config = manual_ca_config(tmp_path, '\n[[mta]]\nhostname = "mx1.example.com"\nissuer = "corp"\nnotify = ["ops"]\n'
                                        '\n[[partner]]\ndomain = "bank.example"\n', tables=monitor)
    modules_after(["-c", str(config), "renew", "--json"])  # the database exists, at the current schema
    store = Store(f"sqlite:///{tmp_path / 'state' / 'certmgr.db'}")
    try:
        seed_practices(store, utcnow())  # TLS reports, sessions and partner checks to read
    finally:
        store.close()
    code, out, modules = modules_after(["-c", str(config), *argv])
    assert code in (0, 1) and "mx1.example.com" in out, out  # status: 1 while a mail TLS alert is open
    if argv[0] == "status":
        alerts = [r for r in json.loads(out) if r.get("type") == "monitor-alert"]
        assert {"tlsrpt-failures", "plaintext-partner"} <= {a["kind"] for a in alerts}, alerts
    else:
        assert 'certmgr_mail_tlsrpt_reports_total 3.0' in out and 'domain="bank.example"' in out, out
    assert not modules & ORM, sorted(modules & ORM)


def test_json_rows_are_one_per_line_of_one_array(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"hostname": f"mx{i}.example.com", "names": ["a", "b"], "deployment": {"target": "postfix"},
             "at": Path("/x")} for i in range(3)]
    print_json(rows)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "[" and lines[-1] == "]" and len(lines) == len(rows) + 2, out
    assert json.loads(out) == [{**r, "at": "/x"} for r in rows]
    assert all(json.loads(line.rstrip(",")) for line in lines[1:-1])
    print_json([])
    assert json.loads(capsys.readouterr().out) == []
