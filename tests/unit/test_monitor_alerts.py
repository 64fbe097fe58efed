"""Each alert fires on the counts that call for it and not on the others."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from certmgr.config.model import PartnerSpec
from certmgr.monitor.alerts import (
    Deployment,
    Thresholds,
    enforced_partners,
    evaluate,
    failures_after_deployments,
    plaintext_with_partners,
)
from certmgr.monitor.storage import PeerCount, PeerKey
from certmgr.monitor.tlsrpt import parse_body
from certmgr.store.monitor import MonitorStore
from tests.tlsrpt_reports import as_json, report

OK = {"inbound": {"a.example": {"Anonymous": 30}}, "outbound": {"p.example": {"Verified": 30}}}


def kinds(current: dict, previous: dict | None = None, failures: dict | None = None) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    alerts = evaluate(current, previous or {}, tlsrpt_failures=failures or {}, enforced_partners=["P.example."],
                      thresholds=Thresholds(tls_share=0.9, min_sessions=20, tlsrpt_failures=10))
    return [(a.kind, a.subject) for a in alerts]


@pytest.mark.parametrize(("current", "previous", "failures", "expected"), [
    (OK, OK, {}, []),
    ({"inbound": {"a.example": {"Anonymous": 17, "none": 3}}}, None, {}, [("tls-share-low", "")]),
    ({"inbound": {"a.example": {"Anonymous": 10, "none": 9}}}, None, {}, []),  # too few sessions to judge
    ({"outbound": {"q.example": {"Verified": 20, "Anonymous": 1}}},
     {"outbound": {"q.example": {"Verified": 5}}}, {}, [("downgrade", "q.example")]),
    ({"outbound": {"q.example": {"Trusted": 21}}}, {"outbound": {"q.example": {"Verified": 5}}}, {}, []),
    (OK, None, {"certificate-expired": 9}, []),
    (OK, None, {"certificate-expired": 9, "starttls-not-supported": 1}, [("tlsrpt-failures", "")]),
])
def test_alerts(current: dict, previous: dict | None, failures: dict | None,  # type: ignore[type-arg]
                expected: list[tuple[str, str]]) -> None:
    assert kinds(current, previous, failures) == expected


def test_plaintext_with_an_enforced_partner_names_domain_peer_direction_and_count() -> None:
    def peer(direction: str, domain: str, host: str, addr: str, n: int) -> PeerCount:
        return PeerCount(PeerKey("2026-11-30T10:00:00+00:00", direction, domain, host, addr), n)

    peers = [peer("outbound", "p.example", "mx1.p.example", "192.0.2.1", 2),
             peer("outbound", "p.example", "mx1.p.example", "192.0.2.1", 1),  # another hour
             peer("outbound", "sub.p.example", "mx2.p.example", "192.0.2.2", 1),
             peer("inbound", "p.example", "out.p.example", "192.0.2.9", 4),
             peer("outbound", "notp.example", "mx.notp.example", "192.0.2.3", 7),  # no partner's
             peer("outbound", "q.example", "mx.q.example", "192.0.2.4", 5)]
    alerts = evaluate({}, {}, tlsrpt_failures={}, plain_peers=peers, enforced_partners=["P.example.", "r.example"])
    assert [(a.kind, a.direction, a.subject, a.message) for a in alerts] == [
        ("plaintext-partner", "inbound", "p.example",
         "4 inbound sessions from enforced partner p.example without TLS: out.p.example[192.0.2.9] (4)"),
        ("plaintext-partner", "outbound", "p.example",
         "4 outbound sessions to enforced partner p.example without TLS: mx1.p.example[192.0.2.1] (3), "
         "mx2.p.example[192.0.2.2] (1)")]
    assert plaintext_with_partners(peers, []) == []


def test_enforced_partners_are_those_the_watch_did_not_refuse() -> None:
    specs = [PartnerSpec("a.example"), PartnerSpec("b.example", require="encrypt"), PartnerSpec("c.example")]
    assert enforced_partners(specs, {}) == ("a.example", "b.example", "c.example")  # never checked
    assert enforced_partners(specs, {"b.example": False, "c.example": True}) == ("a.example", "c.example")


def test_tlsrpt_failures_tied_to_the_deployment_before_them(tmp_path: Path) -> None:
    store = MonitorStore.at(tmp_path / "db")
    doc = report("after")  # date range ends 2026-11-29T23:59:59Z; failures at mx1.reports.test
    doc["organization-name"] = "google.com"
    store.add_tlsrpt(parse_body(as_json(doc), "application/tlsrpt+json"), datetime(2026, 11, 30, tzinfo=UTC))
    failures = store.tlsrpt_failures(datetime(2026, 11, 1, tzinfo=UTC))
    deployed = Deployment("MX1.reports.test.", "4c64ab99ee", datetime(2026, 11, 29, 10, 2, tzinfo=UTC))
    older = Deployment("mx1.reports.test", "0001", datetime(2026, 11, 1, tzinfo=UTC))
    alerts = failures_after_deployments([older, deployed], failures)
    per_type = {f["result-type"]: f["failed-session-count"]
                for p in doc["policies"] for f in p.get("failure-details", [])}
    assert len(alerts) == len(per_type)
    worst = max(per_type, key=lambda k: per_type[k])
    assert alerts[0].message == (f"since serial 4c64ab99… was deployed on mx1.reports.test at 2026-11-29 10:02 UTC, "
                                 f"{per_type[worst]} sessions from google.com failed with {worst}")
    # a deployment after the report's period, or on another host: nothing to tie
    later = Deployment("mx1.reports.test", "ffff", datetime(2026, 11, 30, 1, tzinfo=UTC))
    assert failures_after_deployments([later], failures) == []
    assert failures_after_deployments([Deployment("mx2.reports.test", "1", older.at)], failures) == []
