"""RFC 2136 dynamic updates signed with TSIG: what DNS-01 and DNS publishing share.

Reads the key from a BIND key file (as ``tsig-keygen`` writes it; inline secrets are
refused), builds update messages for a zone and sends them to the primary over TCP.
Network failures are retryable; a refusal by the server repeats until a person fixes
the key or the server's update policy, so the caller decides how to report it.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.tsig
import dns.update

from certmgr.errors import ConfigError
from certmgr.interfaces import Options

Server = tuple[str, int]

ALGORITHMS = {
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
_COMMENT_RE = re.compile(r'("[^"]*")|(?:#|//)[^\n]*|/\*.*?\*/', re.S)


@dataclass(frozen=True)
class TsigKey:
    name: str
    algorithm: str
    secret: bytes

    def __repr__(self) -> str:  # never the secret
        return f"TsigKey(name={self.name!r}, algorithm={self.algorithm!r})"

    def keyring(self) -> dict[dns.name.Name, dns.tsig.Key]:
        name = dns.name.from_text(self.name)
        return {name: dns.tsig.Key(name, self.secret, ALGORITHMS[self.algorithm])}


def parse_tsig_key(text: str, *, source: str = "key file") -> TsigKey:
    """The first ``key "name" { algorithm ...; secret "..."; };`` of a BIND key file."""
    # comments go, quoted strings stay whole: a base64 secret may hold "//"
    text = _COMMENT_RE.sub(lambda m: m.group(1) or "", text)
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
    if algorithm not in ALGORITHMS:
        raise ValueError(
            f"{source}: key {name} uses unsupported algorithm {algorithm} "
            f"(supported: {', '.join(sorted(ALGORITHMS))})"
        )
    try:
        secret = base64.b64decode(secret_m.group(1), validate=True)
    except binascii.Error as e:
        raise ValueError(f"{source}: key {name} has a secret that is not base64") from e
    if not secret:
        raise ValueError(f"{source}: key {name} has an empty secret")
    return TsigKey(name=name, algorithm=algorithm, secret=secret)


def tsig_key_option(options: Options) -> TsigKey:
    """The ``tsig_key_file`` of a config table; inline secrets are refused by name."""
    for inline in ("tsig_secret", "tsig_key", "secret"):
        if options.has(inline):
            options.raw(inline)
            raise ConfigError(
                "secrets are not accepted inline; put the key in a BIND key file "
                "(tsig-keygen) and set tsig_key_file",
                table=options.where,
                key=inline,
            )
    key_file: Path = options.path("tsig_key_file", must_exist=True)
    try:
        text = key_file.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read {key_file}: {e.strerror or e}; make it readable by the user certmgr runs as "
                          "(e.g. root:certmgr, mode 0640)", table=options.where, key="tsig_key_file") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{key_file} is not a text key file ({e.reason}); give the file tsig-keygen wrote",
                          table=options.where, key="tsig_key_file") from e
    try:
        return parse_tsig_key(text, source=str(key_file))
    except ValueError as e:
        raise ConfigError(str(e), table=options.where, key="tsig_key_file") from e


class UpdateRefused(Exception):
    """The server answered the update with an error rcode (``rcode`` names it)."""

    def __init__(self, rcode: str) -> None:
        super().__init__(rcode)
        self.rcode = rcode


class UpdateClient:
    """Sends TSIG-signed updates for zones to one primary server."""

    def __init__(self, server: Server, key: TsigKey, *, timeout: float = 10.0) -> None:
        self.server = server
        self.key = key
        self.timeout = timeout

    def new(self, zone: str) -> dns.update.UpdateMessage:
        return dns.update.UpdateMessage(
            zone,
            keyring=self.key.keyring(),
            keyname=dns.name.from_text(self.key.name),
            keyalgorithm=ALGORITHMS[self.key.algorithm],
        )

    def send(self, update: dns.update.UpdateMessage) -> None:
        """Send ``update``; ``DNSException``/``OSError`` on network trouble, ``UpdateRefused``
        when the server says no."""
        resp = dns.query.tcp(update, self.server[0], port=self.server[1], timeout=self.timeout)
        rcode = resp.rcode()
        if rcode != dns.rcode.NOERROR:
            raise UpdateRefused(dns.rcode.to_text(rcode))


def query_server(server: Server, name: str, rdtype: str, *, timeout: float = 5.0) -> dns.message.Message:
    """One non-recursive query straight to ``server`` (UDP, TCP when truncated)."""
    q = dns.message.make_query(name, rdtype)
    q.flags &= ~dns.flags.RD
    resp, _tcp = dns.query.udp_with_fallback(q, server[0], port=server[1], timeout=timeout)
    return resp


__all__ = [
    "ALGORITHMS",
    "Server",
    "TsigKey",
    "UpdateClient",
    "UpdateRefused",
    "parse_tsig_key",
    "query_server",
    "tsig_key_option",
]
