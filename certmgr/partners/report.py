"""What ``certmgr partners`` prints: the JSON objects, a table, and the exit code."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from certmgr.partners.assess import to_json, worst
from certmgr.partners.model import PartnerFacts
from certmgr.probe.assess import EXIT_CODES

HEADERS = ("domain", "require", "status", "mx", "address", "starttls", "tls", "days", "meets", "problems")


def reports(facts: Sequence[PartnerFacts], now: datetime) -> list[dict[str, Any]]:
    return [to_json(f, now) for f in facts]


def exit_code(objects: Sequence[dict[str, Any]]) -> int:
    """0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN: the worst partner decides (as ``certmgr check``)."""
    return EXIT_CODES[worst([o["status"] for o in objects])]


def rows(objects: Sequence[dict[str, Any]]) -> list[tuple[str, ...]]:
    """One row per MX address (a partner without any: one row), problems on the partner's first row."""
    out: list[tuple[str, ...]] = []
    for o in objects:
        problems = "; ".join(o["problems"]) or "-"
        mxs = o["mx"] or [None]
        for i, mx in enumerate(mxs):
            head = (o["domain"], o["require"], o["status"].upper()) if i == 0 else ("", "", "")
            if mx is None:
                out.append((*head, "-", "-", "-", "-", "-", "-", problems))
                continue
            cert = mx.get("certificate") or {}
            meets = {True: "yes", False: "NO", None: "?"}[mx["meets_level"]]
            out.append((*head, f"{mx['host']} ({mx['preference']})", mx["address"] or "-",
                        "yes" if mx["starttls"] else "no", mx["tls_version"] or "-", str(cert.get("days_left", "-")),
                        meets, problems if i == 0 else ""))
    return out
