"""The Exim log parser and collector on what a real Exim logs for real mail:
swaks into Exim with and without STARTTLS, Exim relaying to Postfix receivers
with a verified and an unverified certificate and without STARTTLS."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certmgr.monitor.collector import collect_log
from certmgr.monitor.report import build_report
from certmgr.store.monitor import MonitorStore
from tests.peers.mailflow import EximFlow, MailFlow

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def exim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EximFlow]:
    root = tmp_path_factory.mktemp("eximflow")
    flow = MailFlow(root / "postfix")
    flow.tls.start()
    flow.plain.start()
    e = EximFlow(root / "exim", flow).start()
    yield e
    e.stop()
    flow.tls.stop()
    flow.plain.stop()


def test_exim_sessions_counted_with_their_tls_facts(exim: EximFlow, tmp_path: Path) -> None:
    sent = [("verified.test", True), ("untrusted.test", False), ("plain.test", True), ("verified.test", False)]
    for domain, starttls in sent:
        exim.send(domain, starttls=starttls)
    exim.deliver()

    store = MonitorStore.at(tmp_path / "db")
    result = collect_log(exim.peer.log, store, log_type="exim")
    assert result.unparsed == 0 and result.sessions == 2 * len(sent)
    assert collect_log(exim.peer.log, store, log_type="exim").sessions == 0  # nothing twice
    now = datetime.now(UTC)
    rep = build_report(store, now - timedelta(days=1), now + timedelta(hours=1))

    inbound, outbound = rep["inbound"], rep["outbound"]
    assert inbound["by_level"] == {"Anonymous": 2, "none": 2}
    assert list(inbound["domains"]) == ["client.example"]  # the HELO name: no reverse name here
    assert {d: c["by_level"] for d, c in outbound["domains"].items()} == {
        "verified.test": {"Verified": 2}, "untrusted.test": {"Untrusted": 1}, "plain.test": {"none": 1}}
    assert Counter(outbound["by_protocol"]) == Counter({"TLSv1.3": 3, "none": 1})
