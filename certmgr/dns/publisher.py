"""The seam between the core and the DNS providers of ``[dns.NAME]`` tables.

A provider (entry-point group ``certmgr.dns``, chosen by the table's ``type``) edits
one zone and reads it back from each of the zone's authoritative servers; it
implements :class:`DnsPublisher` structurally, so it imports nothing of this module.
Record values are in presentation format (``"3 1 1 ab12…"``, TXT as ``'"v=STSv1; id=1"'``);
:func:`canonical` makes two spellings of one record compare equal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from certmgr.errors import ConfigError
from certmgr.interfaces import Options, ProviderEnv

Server = tuple[str, int]


class Seen(Protocol):
    """What one authoritative server answers for an owner and type (a provider returns its own
    class of this shape: providers do not import this package)."""

    @property
    def server(self) -> str:  # "host:port"
        ...

    @property
    def values(self) -> frozenset[str]:  # canonical presentation
        ...

    @property
    def ttl(self) -> int | None:  # None when the RRset is absent
        ...

    @property
    def error(self) -> str | None:  # the server did not answer (timeout, refused)
        ...


@runtime_checkable
class DnsPublisher(Protocol):
    """One zone certmgr may change.  Errors: ``RetryableError`` when the server cannot be
    reached, ``PermanentError`` when it refuses (key, update policy, name outside the zone)."""

    zone: str  # absolute, without the trailing dot
    ttl: int  # default TTL of what it publishes

    def add(self, owner: str, rdtype: str, values: Sequence[str], ttl: int | None = None) -> None:
        """Add ``values`` to the RRset, keeping what is there."""
        ...

    def replace(self, owner: str, rdtype: str, values: Sequence[str], ttl: int | None = None) -> None:
        """Make the RRset exactly ``values`` in one atomic update."""
        ...

    def remove(self, owner: str, rdtype: str, values: Sequence[str] | None = None) -> None:
        """Remove ``values`` from the RRset (all of it when None)."""
        ...

    def authoritative_servers(self) -> list[Server]:
        """Every server a resolver may ask for this zone."""
        ...

    def query(self, server: Server, owner: str, rdtype: str) -> Seen:
        """What ``server`` answers right now (never raises for a server that is down)."""
        ...


def canonical(rdtype: str, value: str) -> str:
    """One spelling of a record's data (hex case, TXT quoting, spacing)."""
    # dnspython is imported here, not by every command that reads a rollover's state (status, renew)
    import dns.exception
    import dns.rdata
    import dns.rdataclass
    import dns.rdatatype

    try:
        rd = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rdtype), value)
    except (dns.exception.DNSException, ValueError) as e:
        raise ValueError(f"not a valid {rdtype} record: {value!r} ({e})") from e
    return str(rd.to_text())


def canonical_set(rdtype: str, values: Iterable[str]) -> frozenset[str]:
    return frozenset(canonical(rdtype, v) for v in values)


def txt(value: str) -> str:
    """A TXT string in presentation format (quoted, escaped)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def load_publisher(name: str, table: Mapping[str, Any], env: ProviderEnv, *, base_dir: Path) -> DnsPublisher:
    """Build the provider of ``[dns.NAME]`` from its table (``type`` picks the provider)."""
    where = f"dns.{name}"
    kind = table.get("type")
    if not isinstance(kind, str):
        raise ConfigError("is required (the DNS provider, e.g. \"rfc2136\")", table=where, key="type")
    from certmgr.registry import load_class

    cls = load_class("dns", kind, table=where)
    rest = {k: v for k, v in table.items() if k != "type"}
    publisher = cls.from_config(name, Options(rest, where=where, base_dir=base_dir), env)
    if not isinstance(publisher, DnsPublisher):
        raise ConfigError(f"DNS provider {kind!r} does not implement publishing", table=where, key="type")
    return publisher


def visible_everywhere(publisher: DnsPublisher, owner: str, rdtype: str, values: Iterable[str]) -> list[Seen]:
    """Ask every authoritative server; the answers that do *not* yet hold all ``values``
    (empty: every server serves them)."""
    want = canonical_set(rdtype, values)
    lagging = []
    for server in publisher.authoritative_servers():
        seen = publisher.query(server, owner, rdtype)
        if seen.error is not None or not want <= seen.values:
            lagging.append(seen)
    return lagging
