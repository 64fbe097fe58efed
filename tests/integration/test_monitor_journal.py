"""Exactly once from the systemd journal: a real Postfix's log lines, made journal entries
by ``systemd-journal-remote``, read with the real ``journalctl --directory`` through the
``[monitor]`` config; sessions sent vs counted across restarts and new entries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certmgr.monitor.commands import collect
from certmgr.monitor.config import parse_monitor
from certmgr.monitor.journal import collect_journal
from certmgr.store.monitor import MonitorStore
from tests.integration.test_monitor_collect import Sent, counted
from tests.peers.journal import JournalRelay
from tests.peers.mailflow import EximFlow, MailFlow

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailFlow]:
    f = MailFlow(tmp_path_factory.mktemp("journal")).start()
    yield f
    f.stop()


def test_journal_source_counts_each_session_once_across_restarts(flow: MailFlow, tmp_path: Path) -> None:
    db = tmp_path / "monitor.sqlite"
    relay = JournalRelay(tmp_path / "journal", flow.mx.log)
    cfg = parse_monitor({"logs": [{"type": "postfix", "journal": "postfix.service",
                                   "directory": str(relay.directory)}]})
    sent = Sent(flow)

    def run() -> int:
        store = MonitorStore.at(db)  # a fresh object each time: a restart
        try:
            summary = collect(cfg, store, now=datetime.now(UTC))
        finally:
            store.close()
        assert summary.errors == []
        [result] = summary.logs
        assert result.source == f"journal:{relay.directory}:postfix.service"
        assert result.unparsed == 0
        return result.sessions

    sent.batch()
    sent.batch()
    assert relay.ship() > 0
    assert run() == 2 * 3 * 2  # three messages a batch, each one session in and one out
    assert counted(db) == (sent.inbound, sent.outbound)

    assert run() == 0  # a restart with nothing new
    assert counted(db) == (sent.inbound, sent.outbound)

    sent.batch()
    relay.ship()
    assert run() == 3 * 2  # only the new entries
    assert run() == 0
    assert counted(db) == (sent.inbound, sent.outbound)
    assert sum(sent.inbound.values()) == 9


def test_journal_unit_filter_and_a_failing_journalctl(flow: MailFlow, tmp_path: Path) -> None:
    """Only the unit's entries are read; a journal that cannot be read is an error of that
    source, counts nothing and leaves the stored cursor where it was."""
    db = tmp_path / "monitor.sqlite"
    relay = JournalRelay(tmp_path / "journal", flow.mx.log, unit="other.service")
    flow.send("verified.test", starttls=True)
    flow.wait_delivered(1)
    relay.ship()
    gone = tmp_path / "gone"
    gone.mkdir()
    cfg = parse_monitor({"logs": [{"type": "postfix", "journal": "other.service", "directory": str(gone)}]})
    gone.rmdir()
    store = MonitorStore.at(db)
    try:
        assert collect_journal("postfix.service", store, directory=relay.directory).lines == 0
        first = collect_journal("other.service", store, directory=relay.directory)
        assert first.lines > 0 and first.sessions > 0
        before = store.load_position(first.source)
        assert before is not None and before["cursor"].startswith("s=")
        summary = collect(cfg, store, now=datetime.now(UTC))
        assert summary.logs == [] and len(summary.errors) == 1
        assert "journalctl for other.service failed" in summary.errors[0] and str(gone) in summary.errors[0]
        assert store.load_position(first.source) == before
    finally:
        store.close()


def test_exim_journal_entries_counted_once(flow: MailFlow, tmp_path: Path) -> None:
    """A real Exim's log lines as its journal entries (``exim4.service``), read as ``type = "exim"``."""
    exim = EximFlow(tmp_path / "exim", flow).start()
    store = MonitorStore.at(tmp_path / "monitor.sqlite")
    try:
        sent = [("verified.test", True), ("plain.test", False), ("untrusted.test", True)]
        for domain, starttls in sent:
            exim.send(domain, starttls=starttls)
        exim.deliver()
        relay = JournalRelay(tmp_path / "journal", exim.peer.log, unit="exim4.service")
        assert relay.ship() > 0
        first = collect_journal("exim4.service", store, log_type="exim", directory=relay.directory)
        assert (first.sessions, first.unparsed) == (2 * len(sent), 0)  # each message in and out
        assert collect_journal("exim4.service", store, log_type="exim", directory=relay.directory).sessions == 0
        now = datetime.now(UTC)
        rows = list(store.sessions(now - timedelta(days=1), now + timedelta(hours=1)))
        outbound = {(r.key.domain, r.key.level): r.sessions for r in rows if r.key.direction == "outbound"}
        assert outbound == {("verified.test", "Verified"): 1, ("plain.test", "none"): 1,
                            ("untrusted.test", "Untrusted"): 1}
    finally:
        store.close()
        exim.stop()
