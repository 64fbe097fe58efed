"""Exactly once: sessions sent through a real Postfix vs sessions counted, while
the log is rotated by rename, by copytruncate and by ``postfix logrotate``
(which gzips at once), and the collector restarts (a new storage object on the
same database) before every run."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certmgr.monitor.collector import CollectResult, collect_log
from certmgr.monitor.report import build_report
from certmgr.store.monitor import MonitorStore
from tests.peers.mailflow import MailFlow

pytestmark = pytest.mark.integration
TLS_DOMAINS = ("verified.test", "trusted.test", "untrusted.test")


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailFlow]:
    f = MailFlow(tmp_path_factory.mktemp("collect")).start()
    yield f
    f.stop()


class Sent:
    def __init__(self, flow: MailFlow) -> None:
        self.flow = flow
        self.inbound: Counter[bool] = Counter()  # STARTTLS used → sessions
        self.outbound: Counter[tuple[str, str]] = Counter()  # (domain, level) → sessions
        self.messages = 0

    def batch(self) -> None:
        for i, domain in enumerate(TLS_DOMAINS):
            starttls = i % 2 == 0
            self.flow.send(domain, starttls=starttls)
            self.inbound[starttls] += 1
            self.outbound[(domain, domain.split(".")[0].capitalize())] += 1
            self.messages += 1
        self.flow.wait_delivered(self.messages)


def counted(db: Path) -> tuple[Counter[bool], Counter[tuple[str, str]]]:
    store = MonitorStore.at(db)
    now = datetime.now(UTC)
    inbound: Counter[bool] = Counter()
    outbound: Counter[tuple[str, str]] = Counter()
    for row in store.sessions(now - timedelta(days=1), now + timedelta(hours=1)):
        k = row.key
        if k.direction == "inbound":
            inbound[k.level != "none"] += row.sessions
        else:
            outbound[(k.domain, k.level)] += row.sessions
    store.close()
    return inbound, outbound


def collect(flow: MailFlow, db: Path) -> CollectResult:
    store = MonitorStore.at(db)  # a fresh process each time: a restart
    try:
        result = collect_log(flow.mx.log, store)
    finally:
        store.close()
    assert not result.position_lost, result
    assert result.unparsed == 0
    return result


def test_rotations_and_restarts_lose_and_double_nothing(flow: MailFlow, tmp_path: Path) -> None:
    db = tmp_path / "monitor.sqlite"
    sent = Sent(flow)
    log = flow.mx.log

    sent.batch()
    assert collect(flow, db).files == ["maillog"]
    assert counted(db) == (sent.inbound, sent.outbound)

    # rename rotation: lines before and after the rename, the writer reopened by a reload
    sent.batch()
    os.rename(log, log.with_name("maillog.1"))
    sent.batch()
    flow.mx.reload()
    sent.batch()
    assert collect(flow, db).files == ["maillog.1", "maillog"]
    assert counted(db) == (sent.inbound, sent.outbound)

    # copytruncate: the copy holds the unread lines, the log starts again at 0 (same inode)
    sent.batch()
    shutil.copy2(log, log.with_name("maillog.2"))
    os.truncate(log, 0)
    sent.batch()
    assert collect(flow, db).files == ["maillog.2", "maillog"]
    assert counted(db) == (sent.inbound, sent.outbound)

    # postfix logrotate: renamed and gzipped at once; the rest is read from the .gz
    sent.batch()
    flow.mx._postfix("logrotate")
    sent.batch()
    result = collect(flow, db)
    assert result.files[0].endswith(".gz") and result.files[-1] == "maillog", result.files
    assert counted(db) == (sent.inbound, sent.outbound)

    # a run with nothing new, and another restart: nothing changes
    assert collect(flow, db).sessions == 0
    assert counted(db) == (sent.inbound, sent.outbound)
    assert sum(sent.inbound.values()) == 8 * len(TLS_DOMAINS)

    # the report's numbers are the sessions sent
    store = MonitorStore.at(db)
    now = datetime.now(UTC)
    rep = json.loads(json.dumps(build_report(store, now - timedelta(days=7), now + timedelta(hours=1))))
    store.close()
    inbound, outbound = rep["inbound"], rep["outbound"]
    assert (inbound["sessions"], inbound["tls"], inbound["plaintext"]) == (
        sum(sent.inbound.values()), sent.inbound[True], sent.inbound[False])
    assert inbound["by_level"] == {"Anonymous": sent.inbound[True], "none": sent.inbound[False]}
    assert outbound["plaintext"] == 0 and outbound["sessions"] == sum(sent.outbound.values())
    assert {d: c["by_level"] for d, c in outbound["domains"].items()} == {
        d: {lvl: n} for (d, lvl), n in sent.outbound.items()}
    assert set(outbound["by_protocol"]) <= {"TLSv1.2", "TLSv1.3"}
    assert sum(h[1] for h in outbound["hourly"]) == outbound["sessions"]
    assert rep["tlsrpt"]["reports"] == 0
    assert [a["kind"] for a in rep["alerts"]] == ["tls-share-low"]  # a third of inbound in plaintext
