"""A private BIND (named) for integration tests: one zone on a free loopback port that
accepts TSIG-signed dynamic updates of TXT records.

Every name in the zone resolves to 127.0.0.1 (wildcard A), so pebble pointed at this
server also finds test hosts.

For DANE and MTA-STS (all optional, the defaults keep the plain unsigned zone):
- ``Named(..., dnssec=True)``: BIND signs the dynamic zone itself (``dnssec-policy
  default``: algorithm 13, RRSIGs within seconds of start and of every update).
- ``SecondaryNamed(workdir, primary)``: a second authoritative server for the zone that
  transfers it from the primary only when told (``sync()``); until then it keeps
  serving the old records, as a lagging secondary does.
- ``ValidatingResolver(workdir, primary)``: a recursive ``named`` on ``127.x.y.z:53``
  that validates the zone against a static trust anchor (the primary's KSK) and
  forwards only to the primary.
- ``dane_dns(workdir)``: the three together, as the DANE tests stand on them.
- ``posttls_finger(resolver, ...)``: Postfix's own TLS/DANE client, run in a private
  mount namespace whose ``/etc/resolv.conf`` names that resolver.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rdatatype

from tests.peers.util import free_port, random_loopback_address, require_binary, stop_process, wait_port

KEY_NAME = "certmgr-test"


AUTHORITATIVE_OPTIONS = """    recursion no;
    dnssec-validation no;
    allow-query { any; };
    notify no;
"""
RESOLVER_OPTIONS = """    recursion yes;
    allow-recursion { 127.0.0.0/8; };
    allow-query { 127.0.0.0/8; };
    dnssec-validation yes;
    max-cache-ttl 1;
    max-ncache-ttl 1;
"""


def _options(d: Path, address: str, port: int, rest: str = AUTHORITATIVE_OPTIONS) -> str:
    """named.conf's ``options`` (files in ``d``, listening on ``address:port`` only, then ``rest``)
    and an empty ``controls``."""
    return f"""options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    listen-on port {port} {{ {address}; }};
    listen-on-v6 {{ none; }};
{rest}}};
controls {{ }};
"""


class LoopbackServer:
    """A server process on an address of its own, which ``lo`` may have been given for it."""

    proc: subprocess.Popen[bytes] | None
    address: str
    _added_address: bool

    def stop(self) -> None:
        stop_process(self.proc, 10)
        self.proc = None
        if self._added_address:
            remove_loopback_address(self.address)
            self._added_address = False


class Named(LoopbackServer):
    def __init__(self, workdir: Path, zone: str = "example.test", *, dnssec: bool = False, records: str = "",
                 wildcard: bool = True, address: str = "127.0.0.1", port: int | None = None) -> None:
        """``records``: extra zone-file lines (relative to the zone); ``wildcard=False`` drops the
        catch-all A record so names without records do not exist; ``address``/``port`` where it
        listens (port 53 on a 127.0.0.x address serves a private ``resolv.conf``)."""
        self.workdir = workdir
        self.zone = zone.rstrip(".")
        self.records = records
        self.wildcard = wildcard
        self.address = address
        self.port = port or free_port()
        self.key_file = workdir / "tsig.key"
        self.dnssec = dnssec
        self.proc: subprocess.Popen[bytes] | None = None
        self._added_address = False

    @property
    def server(self) -> str:
        return f"{self.address}:{self.port}"

    def _write(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        keygen = require_binary("tsig-keygen")
        key_text = subprocess.run(
            [keygen, "-a", "hmac-sha256", KEY_NAME], check=True, capture_output=True, text=True
        ).stdout
        self.key_file.write_text(key_text)
        self.key_file.chmod(0o600)
        zone_file = self.workdir / f"{self.zone}.zone"
        zone_file.write_text(
            f"$ORIGIN {self.zone}.\n$TTL 60\n"
            f"@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n"
            f"@ IN NS ns1\n"
            f"ns1 IN A 127.0.0.1\n"
            f"@ IN A 127.0.0.1\n"
            + ("* IN A 127.0.0.1\n" if self.wildcard else "")
            + self.records
        )
        d = self.workdir
        conf = d / "named.conf"
        conf.write_text(
            f"""{_options(d, self.address, self.port)}include "{self.key_file}";
zone "{self.zone}" {{
    type primary;
    file "{zone_file}";
    update-policy {{ grant {KEY_NAME} zonesub TXT TLSA A MX; }};
    allow-transfer {{ 127.0.0.1; }};
{"    dnssec-policy default;" if self.dnssec else ""}
}};
"""
        )
        return conf

    def start(self) -> None:
        named = require_binary("named")
        conf = self._write()
        if self.address != "127.0.0.1":
            self._added_address = add_loopback_address(self.address)
        log = open(self.workdir / "named.log", "ab")
        # -g: foreground, log to stderr; runs as the current user (root here) in workdir
        self.proc = subprocess.Popen(
            [named, "-g", "-c", str(conf), "-p", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        log.close()
        try:
            wait_port(self.port, host=self.address, timeout=20)
            deadline = time.monotonic() + 20
            while not self.query("TXT", f"nothing.{self.zone}") and not self._has_soa():
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"named did not serve {self.zone}; see {self.workdir / 'named.log'}")
                time.sleep(0.05)
            if self.dnssec:
                self._wait_signed(time.monotonic() + 60)
        except BaseException:
            self.stop()
            raise

    def _wait_signed(self, deadline: float) -> None:
        while not (self.ksk() and self._signed(self.zone)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"named did not sign {self.zone}; see {self.workdir / 'named.log'}")
            time.sleep(0.1)

    def _signed(self, name: str) -> bool:
        q = dns.message.make_query(name, "SOA", want_dnssec=True)
        try:
            r = dns.query.udp(q, self.address, port=self.port, timeout=2)
        except Exception:
            return False
        return any(rrset.rdtype == dns.rdatatype.RRSIG for rrset in r.answer)

    def ksk(self) -> str | None:
        """The zone's key-signing key as ``257 3 13 <base64>`` (None while unsigned)."""
        return next((k for k in self.query("DNSKEY", self.zone) if k.startswith("257 ")), None)

    def serial(self) -> int:
        soa = self.query("SOA", self.zone)
        return int(soa[0].split()[2]) if soa else -1

    def _has_soa(self) -> bool:
        return bool(self.query("SOA", self.zone))

    def query(self, rdtype: str, name: str) -> list[str]:
        """Answers of this server for ``name`` (TXT values unquoted)."""
        q = dns.message.make_query(name, rdtype)
        try:
            r = dns.query.udp(q, self.address, port=self.port, timeout=2)
        except Exception:
            return []
        out: list[str] = []
        for rrset in r.answer:
            for rd in rrset:
                if rrset.rdtype == dns.rdatatype.TXT:
                    out.append(b"".join(rd.strings).decode())
                else:
                    out.append(rd.to_text())
        return out

    def txt(self, name: str) -> list[str]:
        return self.query("TXT", name)

    def replace(self, name: str, rdtype: str, values: list[str], ttl: int = 60) -> None:
        """Set ``name``'s ``rdtype`` records to ``values`` with a TSIG-signed update (TXT, TLSA or A)."""
        import re

        import dns.tsigkeyring
        import dns.update

        secret = re.search(r'secret\s+"([^"]+)"', self.key_file.read_text())
        assert secret is not None
        keyring = dns.tsigkeyring.from_text({KEY_NAME: secret.group(1)})
        upd = dns.update.UpdateMessage(self.zone, keyring=keyring, keyalgorithm="hmac-sha256")
        upd.delete(name, rdtype)
        for v in values:
            upd.add(name, ttl, rdtype, v)
        r = dns.query.tcp(upd, self.address, port=self.port, timeout=5)
        assert r.rcode() == 0, f"named refused the update of {name} {rdtype}: rcode {r.rcode()}"

    def challenge_toml(self) -> str:
        """An inline certmgr.toml dns-01 challenge answered by TSIG updates to this server."""
        return (f'{{ type = "dns-01", provider = "rfc2136", server = "{self.server}", '
                f'tsig_key_file = "{self.key_file}", nameservers = ["{self.server}"] }}')

    def zone_toml(self, name: str = "corp", *, ttl: int, nameservers: list[str] | None = None) -> str:
        """The certmgr.toml ``[dns.NAME]`` table that updates this zone."""
        servers = ", ".join(f'"{s}"' for s in nameservers or [self.server])
        return (f'[dns.{name}]\ntype = "rfc2136"\nserver = "{self.server}"\nzone = "{self.zone}"\n'
                f'tsig_key_file = "{self.key_file}"\nttl = {ttl}\nnameservers = [{servers}]\n')


class SecondaryNamed(Named):
    """A second authoritative server for ``primary``'s zone that lags until ``sync()``.

    The primary sends no NOTIFY and the SOA refresh is an hour, so this server keeps
    the records of its last transfer; ``sync()`` notifies it and waits for the serial.
    """

    def __init__(self, workdir: Path, primary: Named) -> None:
        super().__init__(workdir, primary.zone, dnssec=False)
        self.primary = primary

    def _write(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        d = self.workdir
        conf = d / "named.conf"
        conf.write_text(
            f"""{_options(d, self.address, self.port)}zone "{self.zone}" {{
    type secondary;
    file "{d}/{self.zone}.secondary";
    primaries {{ 127.0.0.1 port {self.primary.port}; }};
    allow-notify {{ 127.0.0.1; }};
}};
"""
        )
        return conf

    def start(self) -> None:
        super().start()
        self.sync()

    def sync(self, timeout: float = 60.0) -> None:
        """Catch up with the primary now (NOTIFY, then wait for its serial)."""
        want = self.primary.serial()
        deadline = time.monotonic() + timeout
        while self.serial() < want:
            notify = dns.message.make_query(self.zone, "SOA")
            notify.set_opcode(dns.opcode.NOTIFY)
            notify.flags |= dns.flags.AA
            try:
                dns.query.udp(notify, "127.0.0.1", port=self.port, timeout=2)
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"secondary stuck at serial {self.serial()} < {want}")
            time.sleep(0.2)

    def _has_soa(self) -> bool:
        return True  # up as soon as it answers; the first transfer is sync()'s job

    def replace(self, name: str, rdtype: str, values: list[str], ttl: int = 60) -> None:
        raise RuntimeError("a secondary takes no updates; update the primary")


def add_loopback_address(address: str) -> bool:
    """Give ``lo`` this address (servers such as named listen only on interface addresses);
    True when it was added here and must be removed with ``remove_loopback_address``."""
    ip = require_binary("ip")
    return subprocess.run([ip, "addr", "add", f"{address}/32", "dev", "lo"], capture_output=True).returncode == 0


def remove_loopback_address(address: str) -> None:
    subprocess.run([require_binary("ip"), "addr", "del", f"{address}/32", "dev", "lo"], capture_output=True)


class ValidatingResolver(LoopbackServer):
    """A recursive ``named`` on ``<address>:53`` validating ``primary``'s signed zone with
    a static trust anchor, forwarding only to the primary (or to ``via``, e.g. a
    secondary, to see the zone as that server serves it)."""

    def __init__(self, workdir: Path, primary: Named, *, via: Named | None = None) -> None:
        self.workdir = workdir
        self.primary = primary
        self.via = via or primary
        self.address = random_loopback_address(53)
        self.proc: subprocess.Popen[bytes] | None = None
        self._added_address = False

    def start(self) -> None:
        ksk = self.primary.ksk()
        if ksk is None:
            raise RuntimeError(f"{self.primary.zone} is not signed: start the primary with dnssec=True")
        flags, proto, alg, *key = ksk.split()
        anchor = f'{flags} {proto} {alg} "{"".join(key)}"'
        d = self.workdir
        d.mkdir(parents=True, exist_ok=True)
        zone = self.primary.zone
        conf = d / "named.conf"
        conf.write_text(
            f"""{_options(d, self.address, 53, RESOLVER_OPTIONS)}trust-anchors {{ "{zone}." static-key {anchor}; }};
zone "{zone}" {{ type forward; forward only; forwarders {{ 127.0.0.1 port {self.via.port}; }}; }};
"""
        )
        # named listens only on addresses of an interface: 127.0.0.1/8 on lo is routed but
        # not an address of its own, so give lo this one for the resolver's lifetime
        self._added_address = add_loopback_address(self.address)
        log = open(d / "named.log", "ab")
        self.proc = subprocess.Popen(
            [require_binary("named"), "-g", "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT, cwd=d
        )
        log.close()
        try:
            wait_port(53, host=self.address, timeout=20)
            deadline = time.monotonic() + 20
            while not self.validated("SOA", zone):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"resolver does not validate {zone}; see {d / 'named.log'}")
                time.sleep(0.1)
        except BaseException:
            self.stop()
            raise

    def validated(self, rdtype: str, name: str) -> list[str]:
        """Answers that carry the AD flag (validated); [] when insecure, bogus or empty."""
        q = dns.message.make_query(name, rdtype, want_dnssec=True)
        q.flags |= dns.flags.AD
        try:
            r = dns.query.udp(q, self.address, port=53, timeout=3)
        except Exception:
            return []
        if not r.flags & dns.flags.AD:
            return []
        return [rd.to_text() for rrset in r.answer if rrset.rdtype == dns.rdatatype.from_text(rdtype) for rd in rrset]



def with_resolver(resolver: ValidatingResolver | Named, cmd: list[str], *, timeout: float = 60.0,
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` so that the system resolver (``/etc/resolv.conf``) is ``resolver`` (a
    validating resolver, or a ``Named`` serving on port 53 of an address of its own): in a
    private mount namespace (``unshare --mount``) with a private resolv.conf bind-mounted
    over it, so nothing outside the test sees the change.  ``trust-ad`` makes glibc pass
    the AD flag on (Postfix needs it for DANE)."""
    conf = resolver.workdir / "resolv.conf"
    conf.write_text(f"nameserver {resolver.address}\noptions trust-ad edns0\n")
    script = 'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"'
    full = [require_binary("unshare"), "--mount", "--propagation", "private", "sh", "-c", script, "sh",
            str(conf), *cmd]
    return subprocess.run(full, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "LANG": "C", **(env or {})})


def posttls_finger(resolver: ValidatingResolver | Named, host: str, port: int = 25, *, level: str = "dane",
                   trust_file: Path | None = None, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Postfix's ``posttls-finger -l LEVEL [host]:port`` resolving through ``resolver``, trusting
    the system CAs or only ``trust_file``."""
    trust = ["-F", str(trust_file)] if trust_file else ["-P", "/etc/ssl/certs"]
    return with_resolver(resolver, [require_binary("posttls-finger"), "-o", "inet_protocols=ipv4", "-t30", "-T60",
                                    "-c", "-l", level, *trust, f"[{host}]:{port}"], timeout=timeout)


def dane_verified(result: subprocess.CompletedProcess[str]) -> bool:
    """Did posttls-finger at level dane verify the server by its TLSA records?"""
    out = result.stdout + result.stderr
    return "Verified TLS connection established" in out and "dane" in out.lower()


def pause(proc: subprocess.Popen[bytes] | None) -> None:
    """Freeze a named (SIGSTOP): it neither answers nor transfers until ``resume``."""
    if proc is not None:
        proc.send_signal(signal.SIGSTOP)


def resume(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None:
        proc.send_signal(signal.SIGCONT)


@contextmanager
def running_named(workdir: Path, zone: str = "example.test", **options: Any) -> Iterator[Named]:
    server = Named(workdir, zone, **options)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class DaneDns:
    primary: Named
    secondary: SecondaryNamed
    resolver: ValidatingResolver


@contextmanager
def dane_dns(workdir: Path, *, hosts: tuple[str, ...] = (), resolve_via_secondary: bool = True) -> Iterator[DaneDns]:
    """A DNSSEC-signed primary, a lagging secondary of it, and a validating resolver forwarding to
    the secondary (senders see the zone as the slowest server serves it) or, with
    ``resolve_via_secondary=False``, to the primary; all stopped after.  ``hosts``: names in the
    zone given an A record 127.0.0.1 of their own before the secondary's first transfer (a TLSA
    owner below a host makes it an empty non-terminal that the wildcard no longer covers)."""
    with running_named(workdir / "primary", dnssec=True) as primary:
        for host in hosts:
            primary.replace(host, "A", ["127.0.0.1"])
        secondary = SecondaryNamed(workdir / "secondary", primary)
        secondary.start()
        resolver = ValidatingResolver(workdir / "resolver", primary, via=secondary if resolve_via_secondary else None)
        try:
            resolver.start()
            yield DaneDns(primary, secondary, resolver)
        finally:
            resolver.stop()
            secondary.stop()
