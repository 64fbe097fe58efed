"""A corrupt TLS-RPT corpus is refused with a reason, never a crash; a bomb is cut
off at the cap while decompressing."""

from __future__ import annotations

import copy
import resource
from typing import Any

import pytest

from certmgr.monitor.tlsrpt import MAX_REPORT_BYTES, RESULT_TYPES, TlsReportError, parse_body
from tests.tlsrpt_reports import as_gzip, as_json, bomb, report

GZ, JS = "application/tlsrpt+gzip", "application/tlsrpt+json"


def test_a_good_report_in_both_encodings() -> None:
    doc = report("r1")
    for body, media in ((as_gzip(doc), GZ), (as_json(doc), JS + "; charset=utf-8")):
        r = parse_body(body, media)
        assert r.report_id == "r1" and [p.policy_type for p in r.policies] == ["sts", "tlsa", "no-policy-found"]
        assert sorted(f.result_type for p in r.policies for f in p.failures) == sorted(RESULT_TYPES)
        assert r.failed == sum(p.failed for p in r.policies) > 0


def test_a_gigabyte_bomb_is_refused_within_the_cap() -> None:
    body = bomb()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(TlsReportError, match="expands beyond"):
        parse_body(body, GZ)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib * 1024 < 4 * MAX_REPORT_BYTES


def mutate(path: list[Any], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(report("r2"))
    obj: Any = doc
    for k in path[:-1]:
        obj = obj[k]
    if value is KeyError:
        del obj[path[-1]]
    else:
        obj[path[-1]] = value
    return doc


@pytest.mark.parametrize(("body", "media", "reason"), [
    (as_gzip(report("t"))[:-30], GZ, "truncated|not a valid gzip"),
    (b"not gzip at all", GZ, "not a valid gzip"),
    (b'{"report-id": ', JS, "not JSON"),
    (b"[1, 2]", JS, "top level is list"),
    (as_json(mutate(["report-id"], KeyError)), JS, "missing 'report-id'"),
    (as_json(mutate(["report-id"], 42)), JS, r"report.report-id: expected str, got int"),
    (as_json(mutate(["policies", 0, "summary", "total-failure-session-count"], "3")), JS,
     r"policies\[0\].summary.total-failure-session-count: expected int, got str"),
    (as_json(mutate(["policies", 1, "failure-details", 0, "failed-session-count"], -1)), JS, "negative count"),
    (as_json(mutate(["policies", 0, "policy", "policy-type"], "dane")), JS, "'dane' is not one of"),
    (as_json(mutate(["date-range", "end-datetime"], "yesterday")), JS, "not an RFC 3339 date-time"),
    (as_json(mutate(["policies", 2, "summary"], KeyError)), JS, r"policies\[2\]: missing 'summary'"),
    (as_json(report("t")), "application/json", "media type 'application/json' is not one of"),
])
def test_corrupt_reports_are_refused_with_the_reason(body: bytes, media: str, reason: str) -> None:
    with pytest.raises(TlsReportError, match=reason):
        parse_body(body, media)
