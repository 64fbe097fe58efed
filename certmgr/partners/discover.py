"""What DNS says about a partner: MX hosts, their addresses, DNSSEC-validated TLSA,
and the MTA-STS and TLS-RPT TXT records.

``resolver`` is the config's ``[certmgr] resolver`` ("host", port) or None for the
system's.  TLSA records count only when the resolver sets the AD bit (it validated
them with DNSSEC): a sender ignores TLSA records it cannot trust, and so do we.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from certmgr.partners.model import DaneFacts, MxLookup
from certmgr.pki.names import comparable_name
from certmgr.probe.dane import Tlsa
from certmgr.probe.dns import make_resolver

if TYPE_CHECKING:
    import dns.resolver

Resolver = tuple[str, int] | None


def _resolver(resolver: Resolver, timeout: float, *, dnssec: bool = False) -> dns.resolver.Resolver:
    import dns.flags

    res = make_resolver(resolver, timeout)
    if dnssec:
        # ask for the AD bit; DO so a validating resolver returns signatures' verdict
        res.use_edns(0, dns.flags.DO, 1232)
        res.flags = dns.flags.RD | dns.flags.AD
    return res


def _dns_error(name: str, rdtype: str, e: Exception, timeout: float) -> str:
    import dns.exception
    import dns.resolver

    if isinstance(e, dns.resolver.NXDOMAIN):
        return f"{name} does not exist in DNS (NXDOMAIN)"
    if isinstance(e, dns.exception.Timeout):
        return f"DNS did not answer the {rdtype} query for {name} within {timeout:.0f} s"
    return f"no name server answered the {rdtype} query for {name}"


def lookup_mx(domain: str, resolver: Resolver, timeout: float = 5.0) -> MxLookup:
    """The MX hosts of ``domain`` by preference; the domain itself when it has none."""
    import dns.exception
    import dns.resolver

    res = _resolver(resolver, timeout)
    try:
        answer = res.resolve(domain, "MX", search=False)
    except dns.resolver.NoAnswer:
        return MxLookup(hosts=((0, domain),), implicit=True)
    except dns.resolver.NXDOMAIN:
        return MxLookup(nxdomain=True)
    except (dns.resolver.NoNameservers, dns.exception.Timeout) as e:
        return MxLookup(error=_dns_error(domain, "MX", e, timeout))
    records = sorted((r.preference, comparable_name(r.exchange.to_text())) for r in answer)
    if any(host == "" for _, host in records):
        # RFC 7505: "0 ." (alone) says the domain accepts no mail
        return MxLookup(null_mx=True)
    return MxLookup(hosts=tuple(dict.fromkeys(records)))


def lookup_addresses(host: str, resolver: Resolver, timeout: float = 5.0) -> tuple[tuple[str, ...], str | None]:
    """Every IPv4 and IPv6 address of ``host``, and why there is none."""
    import dns.exception
    import dns.resolver

    res = _resolver(resolver, timeout)
    found: list[str] = []
    errors: list[str] = []
    for rdtype in ("A", "AAAA"):
        try:
            found += [r.to_text() for r in res.resolve(host, rdtype, search=False)]
        except dns.resolver.NoAnswer:
            continue
        except (dns.resolver.NXDOMAIN, dns.resolver.NoNameservers, dns.exception.Timeout) as e:
            errors.append(_dns_error(host, rdtype, e, timeout))
            if isinstance(e, dns.resolver.NXDOMAIN):
                break
    if found:
        return tuple(found), None
    return (), errors[0] if errors else f"{host} has no A or AAAA record"


def lookup_tlsa(host: str, resolver: Resolver, timeout: float = 5.0) -> DaneFacts:
    """TLSA records at ``_25._tcp.<host>`` and whether the resolver validated them."""
    import dns.exception
    import dns.flags
    import dns.resolver

    res = _resolver(resolver, timeout, dnssec=True)
    name = f"_25._tcp.{host}"
    try:
        answer = res.resolve(name, "TLSA", search=False, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        return DaneFacts()
    except (dns.resolver.NoNameservers, dns.exception.Timeout) as e:
        return DaneFacts(error=_dns_error(name, "TLSA", e, timeout))
    validated = bool(answer.response.flags & dns.flags.AD)
    records = tuple(Tlsa(r.usage, r.selector, r.mtype, r.cert.hex()) for r in (answer.rrset or ()))
    return DaneFacts(records=records, validated=validated)


def lookup_txt(name: str, prefix: str, resolver: Resolver, timeout: float = 5.0) -> tuple[list[str], str | None]:
    """TXT strings at ``name`` that start with ``prefix`` (e.g. ``v=STSv1``), and a DNS error."""
    import dns.exception
    import dns.resolver

    res = _resolver(resolver, timeout)
    try:
        answer = res.resolve(name, "TXT", search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return [], None
    except (dns.resolver.NoNameservers, dns.exception.Timeout) as e:
        return [], _dns_error(name, "TXT", e, timeout)
    texts = [b"".join(r.strings).decode("utf-8", "replace") for r in answer]
    return [t for t in texts if t.replace(" ", "").lower().startswith(prefix.lower())], None


def tags(record: str) -> dict[str, str]:
    """``v=STSv1; id=2026`` → {"v": "STSv1", "id": "2026"} (RFC 8461 3.1, RFC 8460 3)."""
    out: dict[str, str] = {}
    for part in record.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep:
            out[key.strip().lower()] = value.strip()
    return out


def lookup_tls_rpt(domain: str, resolver: Resolver, timeout: float = 5.0) -> tuple[str, ...] | None:
    """The ``rua`` URIs of the domain's TLS-RPT record (RFC 8460), None when none is published."""
    records, _ = lookup_txt(f"_smtp._tls.{domain}", "v=TLSRPTv1", resolver, timeout)
    if len(records) != 1:
        return None
    return tuple(u.strip() for u in tags(records[0]).get("rua", "").split(",") if u.strip())
