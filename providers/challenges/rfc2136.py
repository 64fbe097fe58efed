"""DNS-01 through RFC 2136 dynamic updates signed with TSIG (BIND, Knot, PowerDNS...).

Needs: a primary server that accepts TSIG-signed updates for the zone, and the TSIG key
in a BIND key file (as ``tsig-keygen`` writes it).

Config: ``type = "dns-01"``, ``provider = "rfc2136"``, ``server`` ("host:port"),
``tsig_key_file`` (path; an inline secret is refused), ``zone`` (default: found by SOA
lookup at ``server``), ``ttl`` (default 60), ``propagation_timeout`` (default 120 s),
``nameservers`` (list of "host:port" to check propagation on; default the zone's NS).
"""

from __future__ import annotations

from typing import Self

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.update

from certmgr.errors import ChallengeError
from certmgr.interfaces import Options, ProviderEnv
from providers.challenges.dns01 import Dns01Solver, Server, parse_server
from providers.dnsupdate import TsigKey, UpdateClient, UpdateRefused, parse_tsig_key, tsig_key_option

__all__ = ["Rfc2136Solver", "TsigKey", "parse_tsig_key"]


class Rfc2136Solver(Dns01Solver):
    """Publishes dns-01 TXT records with TSIG-signed dynamic updates."""

    provider = "rfc2136"
    description = "DNS-01 via RFC 2136 dynamic update with TSIG (BIND, Knot, PowerDNS)"

    def __init__(
        self,
        *,
        server: Server,
        key: TsigKey,
        zone: str | None = None,
        ttl: int = 60,
        propagation_timeout: float = 120.0,
        nameservers: list[Server] | None = None,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(ttl=ttl, propagation_timeout=propagation_timeout, nameservers=nameservers)
        self.server = server
        self.key = key
        self.zone = dns.name.from_text(zone).to_text() if zone else None
        self.timeout = timeout

    @classmethod
    def from_config(cls, name: str, options: Options, env: ProviderEnv) -> Self:
        options.str("type", choices=["dns-01"])
        options.str("provider", "rfc2136", choices=["rfc2136"])
        where = options.where
        server = parse_server(options.str("server"), table=where)
        key = tsig_key_option(options)
        zone = options.str("zone", None)
        ttl = options.int("ttl", 60, min=1, max=86400)
        propagation_timeout = options.float("propagation_timeout", 120.0, min=1.0)
        ns = options.str_list("nameservers", [])
        nameservers = [parse_server(n, table=where, key="nameservers") for n in ns]
        options.finish()
        return cls(
            server=server,
            key=key,
            zone=zone,
            ttl=ttl,
            propagation_timeout=propagation_timeout,
            nameservers=nameservers or None,
        )

    def _where(self) -> str:
        return f"rfc2136 {self.server[0]}:{self.server[1]}"

    def find_zone(self, fqdn: str) -> str:
        if self.zone:
            return self.zone
        # the SOA of the closest enclosing zone comes back in the answer (at an apex)
        # or in the authority section (below it)
        query = dns.message.make_query(fqdn, dns.rdatatype.SOA)
        try:
            resp = dns.query.udp(query, self.server[0], port=self.server[1], timeout=self.timeout)
        except (dns.exception.DNSException, OSError) as e:
            raise ChallengeError(f"{self._where()}: SOA lookup for {fqdn} failed: {e}; set `zone`") from e
        for rrset in (*resp.answer, *resp.authority):
            if rrset.rdtype == dns.rdatatype.SOA:
                return str(rrset.name.to_text())
        raise ChallengeError(f"{self._where()}: is not authoritative for any zone above {fqdn}; set `zone`")

    def authoritative_servers(self, zone: str) -> list[Server]:
        if self.nameservers:
            return self.nameservers
        # the zone's NS as the primary itself publishes them
        try:
            resp = dns.query.udp(
                dns.message.make_query(zone, dns.rdatatype.NS),
                self.server[0],
                port=self.server[1],
                timeout=self.timeout,
            )
        except (dns.exception.DNSException, OSError) as e:
            raise ChallengeError(
                f"{self._where()}: NS lookup for {zone} failed: {e}; set `nameservers`"
            ) from e
        names = [str(r.target) for rrset in resp.answer if rrset.rdtype == dns.rdatatype.NS for r in rrset]
        if not names:
            return [self.server]
        self.nameservers = None
        return super().authoritative_servers(zone)

    def _send(self, update: dns.update.UpdateMessage, what: str, fqdn: str) -> None:
        try:
            UpdateClient(self.server, self.key, timeout=self.timeout).send(update)
        except (dns.exception.DNSException, OSError) as e:
            raise ChallengeError(
                f"{self._where()}: {what} TXT {fqdn} failed: {e}; check server and TSIG key"
            ) from e
        except UpdateRefused as e:
            raise ChallengeError(
                f"{self._where()}: {what} TXT {fqdn} refused with {e.rcode}; "
                f"check that key {self.key.name} may update this zone (update-policy / allow-update)"
            ) from e

    def _update(self, zone: str) -> dns.update.UpdateMessage:
        return UpdateClient(self.server, self.key, timeout=self.timeout).new(zone)

    def _rdata(self, value: str) -> dns.rdtypes.ANY.TXT.TXT:
        return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, [value.encode("ascii")])

    def add_txt(self, zone: str, fqdn: str, value: str) -> None:
        update = self._update(zone)
        update.add(dns.name.from_text(fqdn), self.ttl, self._rdata(value))
        self._send(update, "adding", fqdn)

    def delete_txt(self, zone: str, fqdn: str, value: str) -> None:
        update = self._update(zone)
        update.delete(dns.name.from_text(fqdn), self._rdata(value))
        self._send(update, "deleting", fqdn)
