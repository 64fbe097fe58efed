"""Each alert fires on the counts that call for it and not on the others."""

from __future__ import annotations

import pytest

from certmgr.monitor.alerts import Thresholds, evaluate

OK = {"inbound": {"a.example": {"Anonymous": 30}}, "outbound": {"p.example": {"Verified": 30}}}


def kinds(current: dict, previous: dict | None = None, failures: dict | None = None) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    alerts = evaluate(current, previous or {}, tlsrpt_failures=failures or {}, enforced_partners=["P.example."],
                      thresholds=Thresholds(tls_share=0.9, min_sessions=20, tlsrpt_failures=10))
    return [(a.kind, a.subject) for a in alerts]


@pytest.mark.parametrize(("current", "previous", "failures", "expected"), [
    (OK, OK, {}, []),
    ({"outbound": {"p.example": {"Verified": 29, "none": 1}}}, None, {}, [("plaintext-partner", "p.example")]),
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
