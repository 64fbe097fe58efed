"""A zone certmgr may update through RFC 2136 dynamic updates signed with TSIG.

Config (``[dns.NAME]``): ``type = "rfc2136"``, ``server`` ("host:port", the primary
that takes updates), ``zone``, ``tsig_key_file`` (a BIND key file; an inline secret is
refused), ``ttl`` (default 300), ``nameservers`` (list of "host:port" where visibility
is checked; default: the zone's NS as the primary serves them, on port 53),
``timeout`` (seconds, default 10).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Self

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.update

from certmgr.errors import PermanentError, RetryableError
from certmgr.interfaces import Options, ProviderEnv
from providers.challenges.dns01 import parse_server
from providers.dnsupdate import Server, TsigKey, UpdateClient, UpdateRefused, query_server, tsig_key_option


class Seen:
    """Structurally the core's ``Seen`` (providers do not import the core's dns package)."""

    def __init__(self, server: str, values: frozenset[str], ttl: int | None, error: str | None = None) -> None:
        self.server, self.values, self.ttl, self.error = server, values, ttl, error

    def __repr__(self) -> str:
        return f"Seen({self.server}, {sorted(self.values)}, ttl={self.ttl}, error={self.error})"


class Rfc2136Publisher:
    description = "publish records in a zone via RFC 2136 dynamic update with TSIG (BIND, Knot, PowerDNS)"

    def __init__(self, *, name: str, server: Server, zone: str, key: TsigKey, ttl: int = 300,
                 nameservers: list[Server] | None = None, timeout: float = 10.0) -> None:
        self.name = name
        self.server = server
        self.zone = dns.name.from_text(zone).to_text(omit_final_dot=True)
        self.ttl = ttl
        self.nameservers = nameservers
        self.client = UpdateClient(server, key, timeout=timeout)
        self.timeout = timeout

    @classmethod
    def from_config(cls, name: str, options: Options, env: ProviderEnv) -> Self:
        where = options.where
        server = parse_server(options.str("server"), table=where)
        zone = options.str("zone")
        key = tsig_key_option(options)
        ttl = options.int("ttl", 300, min=1, max=86400)
        ns = options.str_list("nameservers", [])
        nameservers = [parse_server(n, table=where, key="nameservers") for n in ns]
        timeout = options.float("timeout", 10.0, min=0.1)
        options.finish()
        return cls(name=name, server=server, zone=zone, key=key, ttl=ttl,
                   nameservers=nameservers or None, timeout=timeout)

    # -- updates -----------------------------------------------------------

    def _where(self) -> str:
        return f"dns.{self.name} (rfc2136 {self.server[0]}:{self.server[1]}, zone {self.zone})"

    def _owner(self, owner: str) -> dns.name.Name:
        name = dns.name.from_text(owner)
        if not name.is_subdomain(dns.name.from_text(self.zone)):
            raise PermanentError(f"{self._where()}: {owner} is not inside zone {self.zone}")
        return name

    def _rdatas(self, rdtype: str, values: Sequence[str]) -> list[dns.rdata.Rdata]:
        t = dns.rdatatype.from_text(rdtype)
        try:
            return [dns.rdata.from_text(dns.rdataclass.IN, t, v) for v in values]
        except (dns.exception.DNSException, ValueError) as e:
            raise PermanentError(f"{self._where()}: not a valid {rdtype} record in {list(values)}: {e}") from e

    def _send(self, what: str, owner: str, rdtype: str,
              build: Callable[[dns.update.UpdateMessage], object]) -> None:
        update = self.client.new(self.zone)
        build(update)
        try:
            self.client.send(update)
        except (dns.exception.DNSException, OSError) as e:
            raise RetryableError(f"{self._where()}: {what} {rdtype} {owner} failed: {e}") from e
        except UpdateRefused as e:
            raise PermanentError(
                f"{self._where()}: {what} {rdtype} {owner} refused with {e.rcode}; check that key "
                f"{self.client.key.name} may update {rdtype} records there (update-policy / allow-update)"
            ) from e

    def add(self, owner: str, rdtype: str, values: Sequence[str], ttl: int | None = None) -> None:
        name, rds = self._owner(owner), self._rdatas(rdtype, values)

        def build(u: dns.update.UpdateMessage) -> None:
            for rd in rds:
                u.add(name, ttl or self.ttl, rd)

        self._send("adding", owner, rdtype, build)

    def replace(self, owner: str, rdtype: str, values: Sequence[str], ttl: int | None = None) -> None:
        name, rds = self._owner(owner), self._rdatas(rdtype, values)

        def build(u: dns.update.UpdateMessage) -> None:
            u.delete(name, rdtype)
            for rd in rds:
                u.add(name, ttl or self.ttl, rd)

        self._send("replacing", owner, rdtype, build)

    def remove(self, owner: str, rdtype: str, values: Sequence[str] | None = None) -> None:
        name = self._owner(owner)
        if values is None:
            self._send("removing", owner, rdtype, lambda u: u.delete(name, rdtype))
            return
        rds = self._rdatas(rdtype, values)

        def build(u: dns.update.UpdateMessage) -> None:
            for rd in rds:
                u.delete(name, rd)

        self._send("removing", owner, rdtype, build)

    # -- reading back ------------------------------------------------------

    def authoritative_servers(self) -> list[Server]:
        if self.nameservers:
            return list(self.nameservers)
        try:
            resp = query_server(self.server, self.zone, "NS", timeout=self.timeout)
            servers: list[Server] = []
            for rrset in resp.answer:
                if rrset.rdtype != dns.rdatatype.NS:
                    continue
                for ns in rrset:
                    a = query_server(self.server, str(ns.target), "A", timeout=self.timeout)
                    servers += [(r.address, 53) for s in a.answer if s.rdtype == dns.rdatatype.A for r in s]
        except (dns.exception.DNSException, OSError) as e:
            raise RetryableError(f"{self._where()}: cannot list the zone's name servers: {e}; "
                                 "set `nameservers`") from e
        return servers or [self.server]

    def query(self, server: Server, owner: str, rdtype: str) -> Seen:
        label = f"{server[0]}:{server[1]}"
        try:
            resp = query_server(server, owner, rdtype, timeout=self.timeout)
        except (dns.exception.DNSException, OSError) as e:
            return Seen(label, frozenset(), None, error=str(e) or type(e).__name__)
        t = dns.rdatatype.from_text(rdtype)
        for rrset in resp.answer:
            if rrset.rdtype == t and rrset.name == dns.name.from_text(owner):
                return Seen(label, frozenset(str(rd.to_text()) for rd in rrset), int(rrset.ttl))
        return Seen(label, frozenset(), None)


__all__ = ["Rfc2136Publisher"]
