"""The collector benchmark's log counts exactly the sessions it generated (a
small run; the figures come from the full million lines)."""

from __future__ import annotations

from pathlib import Path

from bench.collect_bench import generate
from certmgr.monitor.collector import collect_log
from certmgr.store.monitor import MonitorStore


def test_generated_sessions_are_all_counted(tmp_path: Path) -> None:
    log = tmp_path / "maillog"
    expected = generate(log, 20_000)
    result = collect_log(log, MonitorStore.at(tmp_path / "db"))
    assert result.sessions == sum(expected.values())
    assert result.unparsed == sum(1 for line in log.read_text().splitlines() if line.startswith("--"))
