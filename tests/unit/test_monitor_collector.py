"""The collector's bookkeeping on plain files (rotation on real Postfix logs is in
tests/integration/test_monitor_collect.py)."""

from __future__ import annotations

import gzip
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from certmgr.monitor.collector import collect_log
from certmgr.monitor.storage import SessionKey
from certmgr.store.monitor import MonitorStore

H = "2026-11-30T03:00:00+00:00"
LINE = ("Nov 30 03:58:49 mx postfix/smtp[{pid}]: Q{pid}: to=<u@plain.example>, relay=rx[192.0.2.9]:25, "
        "delay=0.01, dsn=2.0.0, status=sent (250 ok)\n")


def write(path: Path, pids: range, mode: str = "a") -> None:
    with open(path, mode) as f:
        f.writelines(LINE.format(pid=p) for p in pids)


def total(store: MonitorStore) -> int:
    return sum(r.sessions for r in store.sessions(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)))


def test_a_failed_commit_changes_nothing(tmp_path: Path) -> None:
    store = MonitorStore.at(tmp_path / "db")
    store.commit("log", {"offset": 1}, {SessionKey(H, "outbound", "d", "none", ""): 1}, 0)
    bad = {SessionKey(H, "outbound", "d", "none", ""): 1, SessionKey(H, "x", "d", "none", object()): 1}  # type: ignore[arg-type]
    with pytest.raises(Exception, match="type"):
        store.commit("log", {"offset": 2}, bad, 5)
    assert store.load_position("log") == {"offset": 1}
    assert total(store) == 1 and store.unparsed() == {"log": 0}


def test_rotated_while_empty_and_a_partial_line(tmp_path: Path) -> None:
    log = tmp_path / "maillog"
    store = MonitorStore.at(tmp_path / "db")
    log.write_text("")
    assert collect_log(log, store).sessions == 0  # position: offset 0 of an empty file
    write(log, range(1, 4))
    with gzip.open(tmp_path / "maillog.20261130-040000.gz", "wb") as gz:
        gz.write(log.read_bytes())
    os.unlink(log)
    write(log, range(4, 6))
    with open(log, "a") as f:
        f.write(LINE.format(pid=6).rstrip("\n"))  # still being written
    r = collect_log(log, store)
    assert (r.sessions, r.files, r.position_lost) == (5, ["maillog.20261130-040000.gz", "maillog"], False)
    with open(log, "a") as f:
        f.write("\n")
    assert collect_log(log, store).sessions == 1
    assert total(store) == 6
