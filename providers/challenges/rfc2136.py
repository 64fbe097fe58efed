"""DNS-01 through RFC 2136 dynamic updates signed with TSIG (BIND, Knot, PowerDNS...).

Needs: a primary server that accepts TSIG-signed updates for the zone, and the TSIG key
in a BIND key file (as ``tsig-keygen`` writes it).

Config: ``type = "dns-01"``, ``provider = "rfc2136"``, ``server`` ("host:port"),
``tsig_key_file`` (path; an inline secret is refused), ``zone`` (default: found by SOA
lookup at ``server``), ``ttl`` (default 60), ``propagation_timeout`` (default 120 s),
``nameservers`` (list of "host:port" to check propagation on; default the zone's NS).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.tsig
import dns.update

from certmgr.errors import ChallengeError, ConfigError
from certmgr.interfaces import Options, ProviderEnv
from providers.challenges.dns01 import Dns01Solver, Server, parse_server

_ALGORITHMS = {
    "hmac-md5": dns.tsig.HMAC_MD5,
    "hmac-sha1": dns.tsig.HMAC_SHA1,
    "hmac-sha224": dns.tsig.HMAC_SHA224,
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
}

_KEY_RE = re.compile(r'key\s+"?([A-Za-z0-9._-]+)"?\s*\{(.*?)\}\s*;', re.S)
_ALG_RE = re.compile(r"algorithm\s+\"?([A-Za-z0-9-]+)\"?\s*;")
_SECRET_RE = re.compile(r'secret\s+"([^"]+)"\s*;')


@dataclass(frozen=True)
class TsigKey:
    name: str
    algorithm: str
    secret: bytes

    def keyring(self) -> dict[dns.name.Name, dns.tsig.Key]:
        name = dns.name.from_text(self.name)
        return {name: dns.tsig.Key(name, self.secret, _ALGORITHMS[self.algorithm])}


def parse_tsig_key(text: str, *, source: str = "key file") -> TsigKey:
    """The first ``key "name" { algorithm ...; secret "..."; };`` of a BIND key file."""
    text = re.sub(r"(#|//)[^\n]*", "", text)
    m = _KEY_RE.search(text)
    if m is None:
        raise ValueError(f'{source}: no `key "name" {{ algorithm ...; secret "..."; }};` block found')
    name, body = m.group(1), m.group(2)
    alg_m, secret_m = _ALG_RE.search(body), _SECRET_RE.search(body)
    if alg_m is None:
        raise ValueError(f"{source}: key {name} has no algorithm")
    if secret_m is None:
        raise ValueError(f"{source}: key {name} has no secret")
    algorithm = alg_m.group(1).lower()
    if algorithm not in _ALGORITHMS:
        raise ValueError(
            f"{source}: key {name} uses unsupported algorithm {algorithm} "
            f"(supported: {', '.join(sorted(_ALGORITHMS))})"
        )
    try:
        secret = base64.b64decode(secret_m.group(1), validate=True)
    except binascii.Error as e:
        raise ValueError(f"{source}: key {name} has a secret that is not base64") from e
    if not secret:
        raise ValueError(f"{source}: key {name} has an empty secret")
    return TsigKey(name=name, algorithm=algorithm, secret=secret)


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
        for inline in ("tsig_secret", "tsig_key", "secret"):
            if options.has(inline):
                options.raw(inline)
                raise ConfigError(
                    "secrets are not accepted inline; put the key in a BIND key file "
                    "(tsig-keygen) and set tsig_key_file",
                    table=where,
                    key=inline,
                )
        key_file: Path = options.path("tsig_key_file", must_exist=True)
        try:
            key = parse_tsig_key(key_file.read_text(), source=str(key_file))
        except (OSError, ValueError) as e:
            raise ConfigError(str(e), table=where, key="tsig_key_file") from e
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
            resp = dns.query.tcp(update, self.server[0], port=self.server[1], timeout=self.timeout)
        except (dns.exception.DNSException, OSError) as e:
            raise ChallengeError(
                f"{self._where()}: {what} TXT {fqdn} failed: {e}; check server and TSIG key"
            ) from e
        rcode = resp.rcode()
        if rcode != dns.rcode.NOERROR:
            raise ChallengeError(
                f"{self._where()}: {what} TXT {fqdn} refused with {dns.rcode.to_text(rcode)}; "
                f"check that key {self.key.name} may update this zone (update-policy / allow-update)"
            )

    def _update(self, zone: str) -> dns.update.UpdateMessage:
        return dns.update.UpdateMessage(
            zone,
            keyring=self.key.keyring(),
            keyname=dns.name.from_text(self.key.name),
            keyalgorithm=_ALGORITHMS[self.key.algorithm],
        )

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
