"""Does the MTA's name resolve in DNS?  The third of the three names that must agree
(certificate, 220 banner, DNS) before a sending MTA will trust this one.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dns.resolver


@dataclass(frozen=True)
class DnsFacts:
    hostname: str
    addresses: tuple[str, ...]
    #: a plain sentence when the name does not resolve, else None
    problem: str | None = None


def make_resolver(resolver: tuple[str, int] | None, timeout: float) -> dns.resolver.Resolver:
    """The ``[certmgr] resolver`` ("host", port), or the system's when None."""
    import dns.resolver

    res = dns.resolver.Resolver(configure=resolver is None)
    if resolver is not None:
        res.nameservers = [resolver[0]]
        res.port = resolver[1]
    res.lifetime = timeout
    return res


def resolve(hostname: str, resolver: tuple[str, int] | None = None, timeout: float = 3.0) -> DnsFacts:
    """A and AAAA records of ``hostname`` from ``resolver`` (or the system's)."""
    import dns.exception
    import dns.resolver

    res = make_resolver(resolver, timeout)
    addresses: list[str] = []
    problems: list[str] = []
    for rdtype in ("A", "AAAA"):
        try:
            addresses += [r.to_text() for r in res.resolve(hostname, rdtype, search=False)]
        except dns.resolver.NXDOMAIN:
            return DnsFacts(hostname, (), f"{hostname} does not exist in DNS (NXDOMAIN)")
        except dns.resolver.NoAnswer:
            continue
        except dns.resolver.NoNameservers as e:
            problems.append(f"no name server answered for {hostname} ({e.msg if hasattr(e, 'msg') else e})")
        except dns.exception.Timeout:
            problems.append(f"DNS did not answer for {hostname} within {timeout:.0f} s")
    if addresses:
        return DnsFacts(hostname, tuple(addresses))
    return DnsFacts(hostname, (), problems[0] if problems else f"{hostname} has no A or AAAA record in DNS")


def address_problem(facts: DnsFacts, probed_host: str) -> str | None:
    """When the probe connected to an IP address, it should be one the name resolves to."""
    try:
        ip = ipaddress.ip_address(probed_host)
    except ValueError:
        return None
    if facts.addresses and str(ip) not in facts.addresses:
        return f"{facts.hostname} resolves to {', '.join(facts.addresses)}, not to the probed address {ip}"
    return None
