"""Partner domains for the partner-TLS tests: a private BIND zone with MX records and
one private Postfix per defect, each on its own loopback address, port 25.

    good         mx.good.<zone>         a certificate from the test CA (trusted via ``trust``)
    nostarttls   mx.nostarttls.<zone>   STARTTLS not offered
    expired      mx.expired.<zone>      a certificate that expired yesterday
    wrongname    mx.wrongname.<zone>    a certificate for another name
    selfsigned   mx.selfsigned.<zone>   a self-signed certificate
    tls10        mx.tls10.<zone>        TLS 1.0 only (OpenSSL at security level 0)

Domains: ``<defect>.<zone>`` with one MX each; ``multi.<zone>`` with MX 10 the good
host and MX 20 the one without STARTTLS; ``nullmx.<zone>`` with ``MX 0 .``;
``nomx.<zone>`` with no MX, only an A record on the good host (whose certificate
also names it).  With ``ipv6`` (an address on ``lo``, see :func:`loopback_ipv6`):
``v6.<zone>`` whose MX ``mx.v6.<zone>`` has only an AAAA record, served by a good Postfix
listening on that IPv6 address (``mtas["v6"]``).  Partners accept anything and discard it
(``default_transport = discard``).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.peers.named import Named
from tests.peers.postfix import PostfixPeer, write_chain_files
from tests.peers.testca import TestCA
from tests.peers.util import random_loopback_address

ZONE = "partners.test"
DEFECTS = ("good", "nostarttls", "expired", "wrongname", "selfsigned", "tls10")


@dataclass
class PartnerWorld:
    zone: str
    named: Named
    ca: TestCA
    trust_file: Path
    #: defect → its Postfix
    mtas: dict[str, PostfixPeer] = field(default_factory=dict)

    def mx(self, defect: str) -> str:
        return f"mx.{defect}.{self.zone}"

    def domain(self, name: str) -> str:
        return f"{name}.{self.zone}"

    def outbound_config(self, state_dir: Path, postfix_config_dir: Path, cert_dir: Path) -> str:
        """The head of a certmgr.toml whose ``[deploy.out]`` is an outbound Postfix checking this world."""
        return f"""
[certmgr]
state_dir = "{state_dir}"
trust = "{self.trust_file}"
resolver = "{self.named.server}"

[deploy.out]
type = "postfix"
config_dir = "{postfix_config_dir}"
cert_dir = "{cert_dir}"
manage_config = true
"""

    @property
    def resolver(self) -> tuple[str, int]:
        return (self.named.address, self.named.port)


def _zone_records(zone: str, addresses: dict[str, str], extra: str) -> str:
    lines = []
    for defect, address in addresses.items():
        lines.append(f"{defect} IN MX 10 mx.{defect}\nmx.{defect} IN A {address}\n")
    lines.append("multi IN MX 10 mx.good\nmulti IN MX 20 mx.nostarttls\n")
    lines.append("nullmx IN MX 0 .\n")
    lines.append(f"nomx IN A {addresses['good']}\n")
    return "".join(lines) + extra.format_map(addresses)


def _peer(root: Path, ca: TestCA, defect: str, zone: str, address: str) -> PostfixPeer:
    host = f"mx.{defect}.{zone}"
    leaf = {
        "good": lambda: ca.leaf(host, (f"nomx.{zone}",)),
        "expired": lambda: ca.leaf(host, days=-1),
        "wrongname": lambda: ca.leaf("mx.elsewhere.invalid"),
        "selfsigned": lambda: ca.leaf(host, self_signed=True),
        "tls10": lambda: ca.leaf(host),
        "nostarttls": lambda: ca.leaf(host),
        "v6": lambda: ca.leaf(host),
    }[defect]()
    d = root / defect
    d.mkdir(parents=True, exist_ok=True)
    extra = "default_transport = discard\nsmtpd_tls_protocols = <=TLSv1\n" if defect == "tls10" else \
        "default_transport = discard\n"
    return PostfixPeer(d, hostname=host, chain_files=write_chain_files(d, [leaf]),
                       starttls=defect != "nostarttls", seclevel0=defect == "tls10", address=address, port=25,
                       extra_main=extra)


@contextmanager
def partner_world(root: Path, *, defects: tuple[str, ...] = DEFECTS, zone: str = ZONE, records: str = "",
                  dns_address: str | None = None, dnssec: bool = False,
                  ipv6: str | None = None) -> Iterator[PartnerWorld]:
    """Start named and one Postfix per defect; ``records``: more zone lines (``{good}`` etc. stand
    for the partner MTAs' addresses); ``dns_address``:
    serve DNS on port 53 of that address (for a Postfix whose resolv.conf points there);
    ``dnssec``: BIND signs the zone (put a ``ValidatingResolver`` in front of it for the AD bit)."""
    ca = TestCA("partner")
    root.mkdir(parents=True, exist_ok=True)
    trust = ca.write_root(root / "partner-root.pem")
    addresses = {d: random_loopback_address(25) for d in defects}
    v6 = f"v6 IN MX 10 mx.v6\nmx.v6 IN AAAA {ipv6}\n" if ipv6 else ""
    with ExitStack() as stack:
        named = Named(root / "named", zone, records=_zone_records(zone, addresses, records) + v6, wildcard=False,
                      dnssec=dnssec, address=dns_address or "127.0.0.1", port=53 if dns_address else None)
        named.start()
        stack.callback(named.stop)
        world = PartnerWorld(zone, named, ca, trust)
        for defect, address in addresses.items():
            peer = _peer(root / "mta", ca, defect, zone, address)
            peer.start()
            stack.callback(peer.stop)
            world.mtas[defect] = peer
        if ipv6:
            peer = _peer(root / "mta", ca, "v6", zone, ipv6)
            peer.start()
            stack.callback(peer.stop)
            world.mtas["v6"] = peer
        yield world


@contextmanager
def loopback_ipv6() -> Iterator[str]:
    """A unique-local IPv6 address (fd00::/8, RFC 4193) added to ``lo`` for the test, removed
    after: a partner MX of its own on port 25, as ``random_loopback_address`` is for IPv4."""
    import random

    address = f"fd00:c3a7:{random.randint(1, 0xffff):x}::{random.randint(2, 0xffff):x}"
    subprocess.run(["ip", "-6", "addr", "add", f"{address}/128", "dev", "lo", "nodad"], check=True,
                   capture_output=True)
    try:
        yield address
    finally:
        subprocess.run(["ip", "-6", "addr", "del", f"{address}/128", "dev", "lo"], check=False, capture_output=True)


def finger_meets(result: subprocess.CompletedProcess[str], level: str) -> bool:
    """posttls-finger's verdict (``tests.peers.named.posttls_finger``): would Postfix deliver at ``level``?"""
    output = result.stdout + result.stderr
    if level in ("verify", "secure"):
        return "Verified TLS connection established" in output or "Trusted TLS connection established" in output
    return "TLS connection established" in output
