"""What probing a partner found (the partner itself is ``PartnerSpec``, from the config)."""

from __future__ import annotations

from dataclasses import dataclass, field

from certmgr.config.model import PartnerSpec
from certmgr.probe.client import ProbeResult
from certmgr.probe.dane import Tlsa


@dataclass(frozen=True)
class MxLookup:
    """The partner's MX RRset, as a sender sees it."""

    #: (preference, host) by preference; the domain itself when there is no MX (RFC 5321 5.1)
    hosts: tuple[tuple[int, str], ...] = ()
    implicit: bool = False
    #: a single "0 ." record (RFC 7505): the domain accepts no mail
    null_mx: bool = False
    #: the domain does not exist
    nxdomain: bool = False
    #: why DNS could not tell (timeout, SERVFAIL)
    error: str | None = None


@dataclass(frozen=True)
class DaneFacts:
    """TLSA records at ``_25._tcp.<host>``; used only when ``validated`` (the AD bit)."""

    records: tuple[Tlsa, ...] = ()
    validated: bool = False
    error: str | None = None


@dataclass(frozen=True)
class StsPolicy:
    """The domain's MTA-STS state (RFC 8461); ``mode`` None when none is published."""

    id: str | None = None
    mode: str | None = None
    mx: tuple[str, ...] = ()
    max_age: int | None = None
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class AddressFacts:
    """One address of one MX, probed on port 25."""

    host: str
    preference: int
    address: str | None  # None when the host has no address
    probe: ProbeResult | None
    dane: DaneFacts | None = None
    #: why there is nothing to probe (the host does not resolve)
    dns_error: str | None = None


@dataclass(frozen=True)
class PartnerFacts:
    spec: PartnerSpec
    mx: MxLookup
    addresses: tuple[AddressFacts, ...] = ()
    mta_sts: StsPolicy = field(default_factory=StsPolicy)
    #: the ``rua`` URIs of the ``_smtp._tls`` record; None when none is published
    tls_rpt: tuple[str, ...] | None = None
