"""The read path of the practices' tables (:mod:`certmgr.store.practice_rows`) returns exactly what
the store returns: the mail TLS monitor's reads of :class:`MonitorStore` and the partner states
of :class:`PartnerStore`, for data written through their own write API (times written with
another offset, window bounds on a stored time to the microsecond).  The table names are the
models'.  (PostgreSQL: tests/integration/test_postgres_rows.py.)
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlmodel import SQLModel

from certmgr.monitor.report import build_report
from certmgr.monitor.storage import MonitorReads
from certmgr.store import Store
from certmgr.store import practice_rows as pr
from certmgr.store.monitor import MonitorStore
from certmgr.store.monitor_types import Failure, PeerKey, PolicyResult, SessionKey, TlsReport, hour_of
from certmgr.store.partners import AddressState, PartnerRecord, PartnerStore
from certmgr.store.practice_rows import MonitorRows, partner_states
from certmgr.store.rows import Rows, engine_query, open_rows
from tests.unit.test_store_rows import no_store

NOW = datetime(2026, 11, 30, 14, 30, tzinfo=UTC)
#: the end of the first TLS report, written with a +02:00 offset
END = datetime(2026, 11, 30, 13, 5, 7, 123456, tzinfo=timezone(timedelta(hours=2)))
#: windows read both ways: the last day, the day before, everything, bounds on END itself
WINDOWS = [(NOW - timedelta(days=1), NOW), (NOW - timedelta(days=2), NOW - timedelta(days=1)),
           (datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC)),
           (END, NOW), (NOW - timedelta(days=3), END)]


def _report(report_id: str, org: str, end: datetime, failed: int, failures: tuple[Failure, ...]) -> TlsReport:
    policy = PolicyResult("sts", "example.org", ("mx.example.org",), 10, failed, failures)
    return TlsReport(report_id, org, "tlsrpt@" + org, end - timedelta(days=1), end, (policy,))


def seed_practices(store: Store, now: datetime = NOW) -> None:
    """Sessions and peers of two sources over two days, three TLS reports (failures detailed
    and not), two partners (one with an open alert), through MonitorStore and PartnerStore;
    ``now``: the time they are written as of (END is as far before it as before NOW)."""
    mon, end = MonitorStore(store), END + (now - NOW)
    for source, hours_ago, n in (("mail.log", 1, 5), ("mail.log", 30, 3), ("journal:postfix", 2, 7)):
        hour = hour_of(now - timedelta(hours=hours_ago))
        counts = {SessionKey(hour, "inbound", "example.org", "Trusted", "TLSv1.3"): n,
                  SessionKey(hour, "outbound", "bank.example", "none", ""): n + 1,
                  SessionKey(hour, "inbound", "example.org", "Anonymous", "TLSv1.2"): 2}
        peers = {PeerKey(hour, "outbound", "bank.example", "mx.bank.example", "192.0.2.7"): n + 1}
        mon.commit(source, {"last_time": (now - timedelta(hours=hours_ago)).isoformat(), "offset": n}, counts,
                   unparsed=n, plain_peers=peers)
    fail = Failure("certificate-expired", 2, "192.0.2.1", "MX.Example.org.", "198.51.100.1")
    assert mon.add_tlsrpt(_report("r1", "google.com", end, 3, (fail,)), now)
    assert mon.add_tlsrpt(_report("r2", "microsoft.com", end + timedelta(hours=1), 0, ()), now)
    assert mon.add_tlsrpt(_report("r3", "yahoo.com", end - timedelta(days=2), 4, ()), now)
    partners = PartnerStore(store)
    expiry = now + timedelta(days=30)
    partners.save([
        PartnerRecord("bank.example", "verify", "critical", False, True, ("mx2.bank.example does not offer STARTTLS",),
                      (AddressState("mx2.bank.example", "192.0.2.7", False, expiry),
                       AddressState("mx3.bank.example", None, True)), end),
        PartnerRecord("shop.example", "encrypt", "ok", True, False, (), (), now)])
    partners.set_alerted("bank.example", end + timedelta(minutes=1))


def assert_practice_rows_hold_what_the_store_reads(rows: Rows, store: Store) -> None:
    mon, reads = MonitorStore(store), MonitorRows(rows)
    checked: list[MonitorReads] = [mon, reads]  # both are what reports and metrics read
    assert len(checked) == 2
    for since, until in WINDOWS:
        assert list(reads.sessions(since, until)) == list(mon.sessions(since, until)), (since, until)
        assert list(reads.plain_peers(since, until)) == list(mon.plain_peers(since, until)), (since, until)
        assert reads.tlsrpt(since, until) == mon.tlsrpt(since, until), (since, until)
        assert reads.tlsrpt_failures(since) == mon.tlsrpt_failures(since), since
        if since.year > 1970:  # the report also reads the window before: not before year 1
            assert build_report(reads, since, until) == build_report(mon, since, until)
    assert len(list(reads.sessions(*WINDOWS[2]))) == 9 and reads.tlsrpt(*WINDOWS[2]).reports == 3
    assert reads.tlsrpt(END, NOW).reports == 2 and reads.tlsrpt(NOW - timedelta(days=3), END).reports == 1
    failures = reads.tlsrpt_failures(NOW - timedelta(days=7))
    assert [(f.organization, f.mx_host, f.result_type, f.sessions) for f in failures] == [
        ("yahoo.com", "", "unspecified", 4), ("google.com", "", "unspecified", 1),
        ("google.com", "mx.example.org", "certificate-expired", 2)]
    assert failures[1].end == END and failures[1].end.tzinfo is UTC
    assert reads.tlsrpt_failures(END) == []  # after END: r1 ended at it
    assert reads.unparsed() == mon.unparsed() == {"mail.log": 8, "journal:postfix": 7}
    for source in ("mail.log", "journal:postfix", "other", "it's"):
        assert reads.load_position(source) == mon.load_position(source), source
    assert reads.load_position("mail.log") == {"last_time": (NOW - timedelta(hours=30)).isoformat(), "offset": 3}

    states = partner_states(rows)
    assert states == PartnerStore(store).states()
    bank = states["bank.example"]
    assert bank.alerted_at == END + timedelta(minutes=1) and bank.checked_at.tzinfo is UTC
    assert states["shop.example"].alerted_at is None and not states["shop.example"].enforced


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'certmgr.db'}")
    seed_practices(s)
    yield s
    s.close()


def test_practice_tables_are_the_models_tables() -> None:
    tables = SQLModel.metadata.tables
    names = {pr.MONITOR_POSITIONS, pr.MONITOR_SESSIONS, pr.PLAIN_PEERS, pr.TLSRPT_REPORTS, pr.TLSRPT_RESULTS,
             pr.PARTNER_STATES}
    assert names <= set(tables), names - set(tables)


def test_sqlite_practice_rows_hold_what_the_store_reads(store: Store) -> None:
    rows = open_rows(store.url, no_store)
    try:
        assert_practice_rows_hold_what_the_store_reads(rows, store)
    finally:
        rows.close()


def test_the_engine_path_reads_the_same_practice_rows(store: Store) -> None:
    """What PostgreSQL goes through (the Store engine's driver connection), here on SQLite."""
    assert_practice_rows_hold_what_the_store_reads(Rows(store.url, engine_query(store.engine)), store)
