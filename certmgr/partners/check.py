"""Probe partners: DNS first, then every MX address on port 25, in bounded parallel.

Three phases over one thread pool (``concurrency`` workers): MX and addresses of
every partner; a STARTTLS probe of every address (the core's probe client, as an
MTA connects: EHLO, STARTTLS, the served chain judged against the system roots
plus ``trust``) with its TLSA lookup; the MTA-STS and TLS-RPT records.  Nothing
here raises for what a partner does: findings are in the returned facts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from certmgr.config.model import PartnerSpec, Settings
from certmgr.partners import discover, mtasts
from certmgr.partners.model import AddressFacts, PartnerFacts
from certmgr.probe.client import probe

T = TypeVar("T")
R = TypeVar("R")
SMTP_PORT = 25
#: what an MTA says in EHLO is its own name; a probe has none to claim
EHLO_NAME = "certmgr-partner-probe.invalid"


@dataclass(frozen=True)
class CheckOptions:
    resolver: discover.Resolver = None
    trust_file: Path | None = None
    timeout: float = 10.0
    concurrency: int = 32
    #: the port partners listen on (25 on the Internet; tests may differ)
    port: int = SMTP_PORT

    @classmethod
    def from_settings(cls, settings: Settings) -> CheckOptions:
        """What every command and the daemon use: the configured resolver and trust, twice the
        configured concurrency (probes mostly wait)."""
        return cls(resolver=settings.resolver, trust_file=settings.trust, concurrency=max(settings.concurrency, 1) * 2)


def _address_facts(host: str, preference: int, address: str, opts: CheckOptions,
                   want_dane: bool) -> AddressFacts:
    result = probe(address, opts.port, servername=host, ehlo_name=EHLO_NAME, trust_file=opts.trust_file,
                   timeout=opts.timeout)
    tlsa = discover.lookup_tlsa(host, opts.resolver, opts.timeout) if want_dane else None
    return AddressFacts(host, preference, address, result, tlsa)


def check_partners(specs: Sequence[PartnerSpec], opts: CheckOptions) -> list[PartnerFacts]:
    """Facts about every partner, in the order given."""
    with ThreadPoolExecutor(max_workers=max(1, opts.concurrency), thread_name_prefix="partner") as pool:
        def each(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
            return list(pool.map(fn, items))

        mxs = each(lambda s: discover.lookup_mx(s.domain, opts.resolver, opts.timeout), specs)
        hosts = sorted({h for m in mxs for _, h in m.hosts})
        addrs = dict(zip(hosts, each(lambda h: discover.lookup_addresses(h, opts.resolver, opts.timeout), hosts),
                         strict=True))
        # DANE is looked up for every MX: a validated TLSA RRset matters to any sender that does DANE
        jobs = [(s, pref, host, a) for s, m in zip(specs, mxs, strict=True) for pref, host in m.hosts
                for a in addrs[host][0]]
        probed = each(lambda j: _address_facts(j[2], j[1], j[3], opts, True), jobs)
        sts = each(lambda s: mtasts.lookup_policy(s.domain, opts.resolver, opts.trust_file, opts.timeout), specs)
        rpt = each(lambda s: discover.lookup_tls_rpt(s.domain, opts.resolver, opts.timeout), specs)
    by_spec: dict[int, list[AddressFacts]] = {}
    for (s, _, _, _), one in zip(jobs, probed, strict=True):
        by_spec.setdefault(id(s), []).append(one)
    out = []
    for s, m, policy, tls_rpt in zip(specs, mxs, sts, rpt, strict=True):
        found = list(by_spec.get(id(s), []))
        for pref, host in m.hosts:
            addresses, error = addrs[host]
            if not addresses:
                found.append(AddressFacts(host, pref, None, None, dns_error=error))
        found.sort(key=lambda f: (f.preference, f.host))
        out.append(PartnerFacts(s, m, tuple(found), policy, tls_rpt))
    return out
