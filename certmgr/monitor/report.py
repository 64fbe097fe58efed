"""The TLS report of a period, as the JSON contract of ``certmgr report --json``.

```
{"since": ISO, "until": ISO,
 "inbound":  {"sessions": n, "tls": n, "plaintext": n, "tls_share": 0.0-1.0 | null,
              "by_level": {level: n}, "by_protocol": {protocol: n},
              "domains": {domain: {the same counts, without "domains"}},
              "hourly": [[hour ISO, sessions, tls], ...],
              "plaintext_peers": [{"host", "address", "domain", "sessions"}, ...]},  # top 20
 "outbound": {... the same ...},
 "tlsrpt": {"reports": n, "successful": n, "failures": {result-type: n},
            "by_policy": {policy-type: {"successful": n, "failed": n}}},
 "alerts": [{"kind", "direction", "subject", "message"}]}
```
Levels are Postfix's (``Anonymous``, ``Untrusted``, ``Trusted``, ``Verified``) and
``none`` for plaintext; a plaintext session's protocol is ``none``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from certmgr.monitor.alerts import DEFAULT_THRESHOLDS, Alert, Thresholds, evaluate
from certmgr.monitor.storage import HourCount, MonitorReads, PeerCount

DIRECTIONS = ("inbound", "outbound")


def _empty() -> dict[str, Any]:
    return {"sessions": 0, "tls": 0, "plaintext": 0, "tls_share": None, "by_level": {}, "by_protocol": {}}


def _add(c: dict[str, Any], level: str, protocol: str, n: int) -> None:
    c["sessions"] += n
    c["plaintext" if level == "none" else "tls"] += n
    c["by_level"][level] = c["by_level"].get(level, 0) + n
    proto = protocol or "none"
    c["by_protocol"][proto] = c["by_protocol"].get(proto, 0) + n
    c["tls_share"] = c["tls"] / c["sessions"]


def summarize(rows: Iterable[HourCount]) -> dict[str, dict[str, Any]]:
    out = {d: {**_empty(), "domains": {}, "hourly": {}} for d in DIRECTIONS}
    for row in rows:
        k = row.key
        d = out[k.direction]
        _add(d, k.level, k.protocol, row.sessions)
        _add(d["domains"].setdefault(k.domain, _empty()), k.level, k.protocol, row.sessions)
        hour = d["hourly"].setdefault(k.hour, [0, 0])
        hour[0] += row.sessions
        hour[1] += 0 if k.level == "none" else row.sessions
    for d in out.values():
        d["domains"] = dict(sorted(d["domains"].items()))
        d["hourly"] = [[h, n, t] for h, (n, t) in sorted(d["hourly"].items())]
    return out


def _levels(rows: Iterable[HourCount]) -> dict[str, dict[str, dict[str, int]]]:
    counts: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    for row in rows:
        counts[row.key.direction][row.key.domain][row.key.level] += row.sessions
    return counts


def plaintext_peers(peers: Iterable[PeerCount], top: int = 20) -> dict[str, list[dict[str, Any]]]:
    """Per direction, the peers with the most sessions without TLS (most first)."""
    totals: dict[tuple[str, str, str, str], int] = defaultdict(int)
    for p in peers:
        totals[(p.key.direction, p.key.host, p.key.address, p.key.domain)] += p.sessions
    out: dict[str, list[dict[str, Any]]] = {d: [] for d in DIRECTIONS}
    for (direction, host, address, domain), n in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(out[direction]) < top:
            out[direction].append({"host": host, "address": address, "domain": domain, "sessions": n})
    return out


def build_report(storage: MonitorReads, since: datetime, until: datetime, *,
                 thresholds: Thresholds = DEFAULT_THRESHOLDS, enforced_partners: Iterable[str] = ()) -> dict[str, Any]:
    rows = list(storage.sessions(since, until))
    previous = list(storage.sessions(since - (until - since), since))
    tlsrpt = storage.tlsrpt(since, until)
    peers = list(storage.plain_peers(since, until))
    alerts: list[Alert] = evaluate(_levels(rows), _levels(previous), tlsrpt_failures=tlsrpt.failures,
                                   plain_peers=peers, enforced_partners=enforced_partners, thresholds=thresholds)
    directions = summarize(rows)
    for direction, top in plaintext_peers(peers).items():
        directions[direction]["plaintext_peers"] = top
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        **directions,
        "tlsrpt": {"reports": tlsrpt.reports, "successful": tlsrpt.successful,
                   "failures": dict(sorted(tlsrpt.failures.items())), "by_policy": tlsrpt.by_policy},
        "alerts": [a.as_dict() for a in alerts],
    }
