"""`certmgr check`: probe MTAs as an anonymous outsider and judge what they serve.

With no targets every configured MTA is probed (a dual RSA+ECDSA MTA once per
algorithm).  A target naming a configured MTA is judged against that MTA's
hostname and managed certificates; any other host:port is judged by its own name.
Results are stored so `status` shows the last probe.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509

from certmgr.config.fields import host_port
from certmgr.errors import StateError, UsageError
from certmgr.interfaces import protocol_for
from certmgr.pki.names import comparable_name, hostname_key
from certmgr.probe import dane
from certmgr.probe.assess import to_json
from certmgr.probe.client import probe
from certmgr.probe.dns import DnsFacts, address_problem, resolve
from certmgr.runtime import Runtime
from certmgr.store import utcnow
from certmgr.store.models import ProbeRecord

log = logging.getLogger("certmgr.checking")

EXIT = {"ok": 0, "warning": 1, "critical": 2, "unknown": 3}
_RANK = ["ok", "unknown", "warning", "critical"]


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    expected: str | None  # the MTA hostname to judge against
    managed: str | None  # configured MTA this target belongs to
    key_alg: str | None = None
    protocol: str = "smtp"  # smtp | imap | pop3
    implicit_tls: bool = False


def targets(rt: Runtime, specs: list[str]) -> list[Target]:
    if not specs:
        out = []
        for mta in rt.config.mtas:
            algs = [None] if len(mta.key_types) == 1 else ["rsa", "ecdsa"]
            out += [Target(mta.smtp_host, mta.smtp_port, mta.hostname, mta.hostname, a, mta.probe_protocol,
                           mta.probe_implicit_tls) for a in algs]
        return out
    out = []
    for spec in specs:
        if spec.startswith("[") or spec.count(":") > 1:  # [IPv6]:PORT, [IPv6] or a bare IPv6 address
            host, given = host_port(spec, 25, lambda m, spec=spec: UsageError(f"{spec}: {m}"))
            port = given if "]:" in spec else None  # the config's parser: one meaning of "[::1]:25"
        else:
            host, _, port_s = spec.rpartition(":") if spec.count(":") == 1 else (spec, "", "")
            try:
                port = int(port_s) if port_s else None
            except ValueError:
                raise UsageError(f"{spec}: the port must be a number (HOST or HOST:PORT)") from None
        known = next((m for m in rt.config.mtas if m.hostname == hostname_key(host)), None)
        if known is not None and port in (None, known.smtp_port):
            out.append(Target(known.smtp_host, known.smtp_port, known.hostname, known.hostname, None,
                              known.probe_protocol, known.probe_implicit_tls))
        elif known is not None:
            assert port is not None
            out.append(Target(known.smtp_host, port, known.hostname, known.hostname, None, *protocol_for(port)))
        else:
            out.append(Target(host, port or 25, comparable_name(host), None, None, *protocol_for(port or 25)))
    return out


def _managed_sha256s(rt: Runtime) -> dict[str, list[str]]:
    """hostname -> SHA-256 of its current certificates, read once for all targets."""
    out: dict[str, list[str]] = {}
    current = rt.store.current_versions()
    for mta, slot in rt.sync_inventory():
        v = current.get(slot.id) if slot.id is not None else None
        out.setdefault(mta.hostname, [])
        if v is not None:
            out[mta.hostname].append(v.sha256)
    return out


def check(rt: Runtime, specs: list[str], now: datetime | None = None) -> list[dict[str, Any]]:
    now = now or utcnow()
    s = rt.config.settings
    todo = targets(rt, specs)
    managed = _managed_sha256s(rt)
    not_stored = rt.store.cannot_write()
    if not_stored:
        log.warning("probe results are not stored (status keeps the previous ones): %s", not_stored)

    def one(t: Target) -> dict[str, Any]:
        result = probe(t.host, t.port, protocol=t.protocol, servername=t.expected, trust_file=s.trust,
                       key_alg=t.key_alg, implicit_tls=t.implicit_tls)
        shas = managed.get(t.managed) if t.managed else None
        report = to_json(result, expected_hostname=t.expected, managed_sha256s=shas,
                         warn_days=s.warning_days, crit_days=s.critical_days, now=now)
        report["hostname"] = t.managed
        if t.managed:
            _add_dns(report, resolve(t.managed, s.resolver), t.host)
            if rt.config.mta(t.managed).dane and result.leaf_der:
                _add_dane(report, t.managed, result.leaf_der, result.chain_der, s.resolver)
        if not not_stored:
            _store(rt, ProbeRecord(
                hostname=t.managed, target=report["target"], ts=now, status=report["status"],
                problems=json.dumps(report["problems"]),
                served_sha256=(report.get("certificate") or {}).get("sha256"), report=json.dumps(report),
            ))
        return report

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(todo)))) as pool:
        return list(pool.map(one, todo))


def _store(rt: Runtime, row: ProbeRecord) -> None:
    """Keep the result for `status`; a probe that worked is still reported when the disk fails."""
    try:
        rt.store.add_probe(row)
    except StateError as e:
        log.warning("probe result of %s not stored: %s", row.target, e)


def raise_status(report: dict[str, Any], status: str) -> None:
    """Make a report's status at least ``status`` (never lower it)."""
    if _RANK.index(report["status"]) < _RANK.index(status):
        report["status"] = status


def _add_dns(report: dict[str, Any], facts: DnsFacts, probed_host: str) -> None:
    """Practice 3: certificate, banner and DNS must agree; a name that does not resolve is a warning."""
    problem = facts.problem or address_problem(facts, probed_host)
    report["dns"] = {"hostname": facts.hostname, "addresses": list(facts.addresses), "resolves": not facts.problem}
    if problem:
        report["problems"].append(problem)
        raise_status(report, "warning")


def _add_dane(report: dict[str, Any], hostname: str, leaf_der: bytes, chain_der: tuple[bytes, ...],
              resolver: tuple[str, int] | None) -> None:
    """TLSA records published for the MTA must match what it serves, or DANE senders will not deliver."""
    records = dane.lookup(hostname, 25, resolver)
    if not records:
        report["dane"] = None
        return
    served = chain_der if chain_der and chain_der[0] == leaf_der else (leaf_der, *chain_der)
    chain = [x509.load_der_x509_certificate(d) for d in served]
    problem = dane.check_chain(records, chain, hostname, 25)
    report["dane"] = {"records": [str(r) for r in records], "match": problem is None}
    if problem:
        report["problems"].append(problem)
        report["status"] = "critical"


def probe_all(rt: Runtime, now: datetime | None = None) -> list[dict[str, Any]]:
    """Probe every configured MTA (the daemon's probe job)."""
    return check(rt, [], now)


def exit_code(reports: list[dict[str, Any]]) -> int:
    worst = max((r["status"] for r in reports), key=_RANK.index, default="ok")
    return EXIT[worst]
