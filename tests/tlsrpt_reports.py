"""TLS reports built to RFC 8460 §4 for tests: every policy type and result type."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

from certmgr.monitor.tlsrpt import RESULT_TYPES


def report(report_id: str, *, failures: int = 3, successes: int = 100) -> dict[str, Any]:
    """One report: an sts, a tlsa and a no-policy-found policy; each result type once."""
    details = [
        {"result-type": rt, "sending-mta-ip": "192.0.2.10", "receiving-mx-hostname": "mx1.reports.test",
         "receiving-ip": "198.51.100.7", "failed-session-count": failures + i}
        for i, rt in enumerate(RESULT_TYPES)
    ]
    half = len(details) // 2
    return {
        "organization-name": "Reporter Inc.",
        "date-range": {"start-datetime": "2026-11-29T00:00:00Z", "end-datetime": "2026-11-29T23:59:59Z"},
        "contact-info": "smtp-tls-reporting@reporter.test",
        "report-id": report_id,
        "policies": [
            {"policy": {"policy-type": "sts", "policy-domain": "reports.test",
                        "policy-string": ["version: STSv1", "mode: enforce", "mx: mx1.reports.test", "max_age: 86400"],
                        "mx-host": ["mx1.reports.test"]},
             "summary": {"total-successful-session-count": successes,
                         "total-failure-session-count": sum(d["failed-session-count"] for d in details[:half])},
             "failure-details": details[:half]},
            {"policy": {"policy-type": "tlsa", "policy-domain": "reports.test",
                        "policy-string": ["3 1 1 0123456789abcdef"]},
             "summary": {"total-successful-session-count": successes // 2,
                         "total-failure-session-count": sum(d["failed-session-count"] for d in details[half:])},
             "failure-details": details[half:]},
            {"policy": {"policy-type": "no-policy-found", "policy-domain": "other.test"},
             "summary": {"total-successful-session-count": 7, "total-failure-session-count": 0}},
        ],
    }


def as_json(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def as_gzip(doc: dict[str, Any]) -> bytes:
    return gzip.compress(as_json(doc))


def bomb(size: int = 1 << 30) -> bytes:
    """A valid gzip stream of ``size`` zero bytes (about a thousandth of that compressed)."""
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b"\0" * (1 << 20)
    parts = [c.compress(chunk) for _ in range(size // len(chunk))]
    return b"".join(parts) + c.flush()
