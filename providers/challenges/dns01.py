"""The shared DNS-01 logic: publish a TXT record, wait until every authoritative server
of the zone answers with it, remove exactly that value afterwards.

A DNS provider subclasses :class:`Dns01Solver` and implements ``add_txt`` and
``delete_txt`` (and may override ``find_zone`` / ``authoritative_servers``).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rdatatype
import dns.resolver

from certmgr.errors import ChallengeError, ConfigError
from certmgr.interfaces import ChallengeTask

log = logging.getLogger(__name__)

Server = tuple[str, int]


def parse_server(value: str, *, default_port: int = 53, key: str = "server", table: str = "") -> Server:
    """ "host", "host:port", "[v6]:port" -> (host, port)."""
    host, port = value, default_port
    if value.startswith("["):
        end = value.find("]")
        host = value[1:end]
        rest = value[end + 1 :]
        if rest.startswith(":"):
            port = _port(rest[1:], key, table)
    elif value.count(":") == 1:
        host, p = value.split(":")
        port = _port(p, key, table)
    if not host:
        raise ConfigError(f"needs a host, got {value!r}", table=table, key=key)
    try:  # dnspython sends to an address; a name here would fail at every query
        host = str(ipaddress.ip_address(host))
    except ValueError:
        raise ConfigError(f"must be an IP address with an optional port (192.0.2.53:53, [2001:db8::53]:53), "
                          f"got {value!r}: write the server's address, not its name", table=table, key=key) from None
    return host, port


def _port(text: str, key: str, table: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ConfigError(f"has an invalid port {text!r}", table=table, key=key)
    return int(text)


def challenge_name(domain: str) -> str:
    """The owner of the TXT record; a wildcard is validated at its base name."""
    base = domain[2:] if domain.startswith("*.") else domain
    return f"_acme-challenge.{base.rstrip('.')}."


class Dns01Solver(ABC):
    challenge_type = "dns-01"
    #: short name used in messages ("rfc2136", ...)
    provider = "dns-01"

    def __init__(
        self,
        *,
        ttl: int = 60,
        propagation_timeout: float = 120.0,
        nameservers: Sequence[Server] | None = None,
    ) -> None:
        self.ttl = ttl
        self.propagation_timeout = propagation_timeout
        self.nameservers = list(nameservers) if nameservers else None
        self._zones: dict[str, str] = {}
        self._zones_lock = threading.Lock()

    # -- what a provider implements ----------------------------------------

    @abstractmethod
    def add_txt(self, zone: str, fqdn: str, value: str) -> None:
        """Add one TXT value at ``fqdn`` (absolute, trailing dot) keeping others."""

    @abstractmethod
    def delete_txt(self, zone: str, fqdn: str, value: str) -> None:
        """Remove exactly that TXT value at ``fqdn``."""

    def find_zone(self, fqdn: str) -> str:
        """The zone that holds ``fqdn`` (absolute); default: the system resolver's SOA."""
        try:
            return str(dns.resolver.zone_for_name(fqdn))
        except dns.exception.DNSException as e:
            raise ChallengeError(
                f"{self.provider}: cannot find the DNS zone of {fqdn}: {e}; set `zone`"
            ) from e

    def authoritative_servers(self, zone: str) -> list[Server]:
        """Where propagation is checked: ``nameservers`` if set, else the zone's NS hosts."""
        if self.nameservers:
            return self.nameservers
        servers: list[Server] = []
        try:
            for ns in dns.resolver.resolve(zone, "NS"):
                for a in dns.resolver.resolve(str(ns), "A"):
                    servers.append((str(a), 53))
        except dns.exception.DNSException as e:
            raise ChallengeError(
                f"{self.provider}: cannot resolve the name servers of {zone}: {e}; set `nameservers`"
            ) from e
        return servers

    # -- shared work -------------------------------------------------------

    def _zone(self, fqdn: str) -> str:
        with self._zones_lock:
            cached = self._zones.get(fqdn)
        if cached is not None:
            return cached
        zone = self.find_zone(fqdn)
        with self._zones_lock:
            self._zones[fqdn] = zone
        return zone

    def present(self, task: ChallengeTask) -> None:
        domain, value = task.domain, task.dns_value
        fqdn = challenge_name(domain)
        zone = self._zone(fqdn)
        self.add_txt(zone, fqdn, value)
        self.wait_visible(zone, fqdn, value, domain)

    def cleanup(self, task: ChallengeTask) -> None:
        domain, value = task.domain, task.dns_value
        fqdn = challenge_name(domain)
        self.delete_txt(self._zone(fqdn), fqdn, value)

    def wait_visible(self, zone: str, fqdn: str, value: str, domain: str) -> None:
        """Return once every authoritative server answers ``value`` at ``fqdn``."""
        servers = self.authoritative_servers(zone)
        deadline = time.monotonic() + self.propagation_timeout
        waiting = set(servers)
        delay = 0.02
        last_error = ""
        while True:
            for server in list(waiting):
                try:
                    if value in txt_values(server, fqdn):
                        waiting.discard(server)
                except dns.exception.DNSException as e:
                    last_error = f" (last error from {server[0]}:{server[1]}: {e})"
            if not waiting:
                return
            if time.monotonic() + delay > deadline:
                names = ", ".join(f"{h}:{p}" for h, p in sorted(waiting))
                raise ChallengeError(
                    f"{self.provider}: TXT {fqdn} for {domain} not visible on {names} after "
                    f"{self.propagation_timeout:g}s{last_error}; "
                    "check zone transfers to the secondaries or raise propagation_timeout"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)


def txt_values(server: Server, fqdn: str, timeout: float = 2.0) -> set[str]:
    """TXT strings at ``fqdn`` as ``server`` answers them (non-recursive)."""
    query = dns.message.make_query(fqdn, dns.rdatatype.TXT)
    query.flags &= ~dns.flags.RD
    response = dns.query.udp(query, server[0], port=server[1], timeout=timeout)
    values: set[str] = set()
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.TXT:
            for rdata in rrset:
                values.add(b"".join(rdata.strings).decode("ascii", "replace"))
    return values
