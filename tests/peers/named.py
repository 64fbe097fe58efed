"""A private BIND (named) for integration tests: one zone on a free loopback port that
accepts TSIG-signed dynamic updates of TXT records.

Every name in the zone resolves to 127.0.0.1 (wildcard A), so pebble pointed at this
server also finds test hosts.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rdatatype

from tests.peers.util import free_port, require_binary, stop_process, wait_port

KEY_NAME = "certmgr-test"


class Named:
    def __init__(self, workdir: Path, zone: str = "example.test", *, records: str = "",
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
            f"""options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    listen-on port {self.port} {{ {self.address}; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    allow-query {{ any; }};
    notify no;
}};
controls {{ }};
include "{self.key_file}";
zone "{self.zone}" {{
    type primary;
    file "{zone_file}";
    update-policy {{ grant {KEY_NAME} zonesub TXT TLSA A; }};
}};
"""
        )
        return conf

    def _add_address(self) -> None:
        # named listens only on interface addresses; Linux routes 127/8 to lo without one
        if self.address == "127.0.0.1":
            return
        shown = subprocess.run(["ip", "-o", "addr", "show", "dev", "lo"], capture_output=True, text=True).stdout
        if f" {self.address}/" not in shown:
            subprocess.run(["ip", "addr", "add", f"{self.address}/32", "dev", "lo"], check=True)
            self._added_address = True

    def start(self) -> None:
        named = require_binary("named")
        conf = self._write()
        self._add_address()
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
        except BaseException:
            self.stop()
            raise

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

    def stop(self) -> None:
        stop_process(self.proc, 10)
        self.proc = None
        if self._added_address:
            subprocess.run(["ip", "addr", "del", f"{self.address}/32", "dev", "lo"], check=False)
            self._added_address = False


@contextmanager
def running_named(workdir: Path, zone: str = "example.test", **options: Any) -> Iterator[Named]:
    server = Named(workdir, zone, **options)
    server.start()
    try:
        yield server
    finally:
        server.stop()
