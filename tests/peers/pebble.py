"""A private pebble ACME server (and pebble-challtestsrv as its DNS) for integration tests.

Everything lives in a temporary directory and on free loopback ports.  Pebble ships no
certificate for its own listener, so a throw-away CA and a 127.0.0.1/localhost server
certificate are made here; clients trust ``ca_bundle``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.peers.named import DaneDns, Named, dane_dns
from tests.peers.util import free_port, require_binary, stop_process, wait_port


def make_tls_ca(directory: Path) -> tuple[Path, Path, Path]:
    """Write a CA and a 127.0.0.1/localhost server cert; return (ca, cert, key) paths."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "certmgr test TLS CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return ca_path, cert_path, key_path


class ChallTestSrv:
    """pebble-challtestsrv as a DNS server answering 127.0.0.1 for every name."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.dns_port = free_port()
        self.management_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = require_binary("pebble-challtestsrv")
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "challtestsrv.log", "ab")
        self.proc = subprocess.Popen(
            [
                binary,
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
                "-dns01",
                f"127.0.0.1:{self.dns_port}",
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-management",
                f"127.0.0.1:{self.management_port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_port(self.management_port)

    @property
    def dns_server(self) -> str:
        return f"127.0.0.1:{self.dns_port}"

    def stop(self) -> None:
        stop_process(self.proc, 5)
        self.proc = None


class Pebble:
    """One pebble process; ``restart()`` starts a fresh one (all state forgotten)."""

    def __init__(
        self,
        workdir: Path,
        *,
        dns_server: str,
        env: Mapping[str, str] | None = None,
        eab_keys: Mapping[str, str] | None = None,
        validity_seconds: int | None = None,
        blocklist: tuple[str, ...] = (),
    ) -> None:
        self.workdir = workdir
        #: lifetime of the certificates it signs (pebble's default: about five years)
        self.validity_seconds = validity_seconds
        #: domains it refuses (rejectedIdentifier: a permanent error)
        self.blocklist = blocklist
        self.dns_server = dns_server
        self.env = {"PEBBLE_VA_NOSLEEP": "1", **(env or {})}
        self.eab_keys = dict(eab_keys or {})
        self.port = free_port()
        self.management_port = free_port()
        #: where pebble checks HTTP-01 answers: a solver under test listens here
        self.http_port = free_port()
        self.tls_port = free_port()
        self.ca_bundle, self._cert, self._key = make_tls_ca(workdir / "tls")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    @property
    def management_url(self) -> str:
        return f"https://127.0.0.1:{self.management_port}"

    def issuer_toml(self, name: str = "pebble", challenge: str | None = None) -> str:
        """The ``[issuer.NAME]`` table of a certmgr.toml that issues from this pebble
        (HTTP-01 on pebble's validation port unless ``challenge`` is given)."""
        challenge = challenge or (
            f'{{ type = "http-01", mode = "standalone", address = "127.0.0.1", port = {self.http_port} }}')
        return (f'[issuer.{name}]\ntype = "acme"\ndirectory = "{self.directory_url}"\n'
                f'ca_bundle = "{self.ca_bundle}"\ncontact = ["mailto:postmaster@example.com"]\n'
                f"challenge = {challenge}\n")

    def _write_config(self) -> Path:
        conf: dict[str, Any] = {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": str(self._cert),
            "privateKey": str(self._key),
            "httpPort": self.http_port,
            "tlsPort": self.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": bool(self.eab_keys),
        }
        if self.eab_keys:
            conf["externalAccountMACKeys"] = self.eab_keys
        if self.validity_seconds is not None:
            conf["certificateValidityPeriod"] = self.validity_seconds
        if self.blocklist:
            conf["domainBlocklist"] = list(self.blocklist)
        path = self.workdir / "pebble-config.json"
        path.write_text(json.dumps({"pebble": conf}, indent=2))
        return path

    def start(self) -> None:
        binary = require_binary("pebble")
        config = self._write_config()
        env = {**os.environ, **self.env}
        log = open(self.workdir / "pebble.log", "ab")
        self.proc = subprocess.Popen(
            [binary, "-config", str(config), "-dnsserver", self.dns_server],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()
        wait_port(self.port)
        deadline = time.monotonic() + 15
        while True:
            try:
                requests.get(self.directory_url, verify=str(self.ca_bundle), timeout=2).raise_for_status()
                return
            except requests.RequestException:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"pebble did not start; see {self.workdir / 'pebble.log'}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        stop_process(self.proc, 5)
        self.proc = None

    def restart(self) -> None:
        """A new pebble process on the same ports: accounts, orders and roots are gone."""
        self.stop()
        self.start()

    def _get(self, path: str) -> requests.Response:
        return requests.get(self.management_url + path, verify=str(self.ca_bundle), timeout=5)

    def root_pem(self) -> bytes:
        r = self._get("/roots/0")
        r.raise_for_status()
        return r.content

    def intermediate_pem(self) -> bytes:
        r = self._get("/intermediates/0")
        r.raise_for_status()
        return r.content

    def cert_status(self, serial: int) -> str:
        """ "Valid" or "Revoked" for a certificate this pebble issued."""
        r = self._get(f"/cert-status-by-serial/{serial:x}")
        if r.status_code == 404:
            # pebble prints serials as big.Int %x; keep a zero-padded form as a fallback
            r = self._get(f"/cert-status-by-serial/{serial:040x}")
        r.raise_for_status()
        return str(r.json()["Status"])

    def log_text(self) -> str:
        try:
            return (self.workdir / "pebble.log").read_text(errors="replace")
        except OSError:
            return ""


@contextmanager
def running_pebble(
    workdir: Path,
    *,
    dns_server: str | None = None,
    env: Mapping[str, str] | None = None,
    eab_keys: Mapping[str, str] | None = None,
    validity_seconds: int | None = None,
    blocklist: tuple[str, ...] = (),
) -> Iterator[Pebble]:
    """Pebble (plus challtestsrv as DNS unless ``dns_server`` is given); both stopped after."""
    chall: ChallTestSrv | None = None
    pebble: Pebble | None = None
    try:
        if dns_server is None:
            chall = ChallTestSrv(workdir / "challtestsrv")
            chall.start()
            dns_server = chall.dns_server
        workdir.mkdir(parents=True, exist_ok=True)
        pebble = Pebble(workdir, dns_server=dns_server, env=env, eab_keys=eab_keys,
                        validity_seconds=validity_seconds, blocklist=blocklist)
        pebble.start()
        yield pebble
    finally:
        if pebble is not None:
            pebble.stop()
        if chall is not None:
            chall.stop()


# --------------------------------------------------------------------------
# Client-side helpers for tests of the ACME issuer against this pebble
# --------------------------------------------------------------------------


def make_csr(names: list[str], key_type: str = "ecdsa-p256") -> tuple[bytes, bytes]:
    """(key_pem, csr_pem) for ``names`` (CN = first name), as the core would make them."""
    from tests.peers.testca import make_key

    key = make_key(key_type)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, csr.public_bytes(serialization.Encoding.PEM)


class AccountStore:
    """In-memory stand-in for the core's account storage, counting saves."""

    def __init__(self) -> None:
        import threading

        self.record: Any = None
        self.saves = 0
        self.lock = threading.Lock()

    def load(self) -> Any:
        with self.lock:
            return self.record

    def save(self, record: Any) -> None:
        with self.lock:
            self.record = record
            self.saves += 1

    def context(
        self,
        hostname: str,
        *,
        steps: list[tuple[str, dict[str, str]]] | None = None,
        resume_order_url: str | None = None,
    ) -> Any:
        from certmgr.interfaces import IssueContext

        def record_step(step: str, detail: Mapping[str, str]) -> None:
            if steps is not None:
                steps.append((step, dict(detail)))

        return IssueContext(
            hostname=hostname,
            load_account=self.load,
            save_account=self.save,
            record_step=record_step,
            resume_order_url=resume_order_url,
        )


def make_challenge_factory() -> Any:
    """The make_challenge the core provides: the class by the table's provider, else type."""
    from certmgr.interfaces import Options
    from providers.challenges.exec import ExecSolver
    from providers.challenges.http01 import Http01Solver
    from providers.challenges.rfc2136 import Rfc2136Solver

    classes: dict[str, Any] = {"http-01": Http01Solver, "rfc2136": Rfc2136Solver, "exec": ExecSolver}

    def make(options: Options) -> Any:
        table = options._table
        kind = table.get("provider") or table.get("type")
        from certmgr.interfaces import ProviderEnv

        env = ProviderEnv(config_dir=options.base_dir, state_dir=options.base_dir)
        return classes[str(kind)].from_config("challenge", options, env)

    return make


def make_issuer(table: Mapping[str, Any], base_dir: Path, name: str = "pebble") -> Any:
    """An AcmeIssuer built the way the core builds it, from a config table."""
    from certmgr.interfaces import Options, ProviderEnv
    from providers.issuers.acme import AcmeIssuer

    env = ProviderEnv(config_dir=base_dir, state_dir=base_dir, make_challenge=make_challenge_factory())
    return AcmeIssuer.from_config(name, Options(table, where=f"issuer.{name}", base_dir=base_dir), env)


def dns01_issue(pebble: Pebble, named: Named, base_dir: Path) -> Callable[[str, bytes, tuple[str, ...]], bytes]:
    """The ``issue(key_type, key_pem, names) -> fullchain PEM`` that the DANE and MTA-STS runners
    take: the core's CSR for the key, issued by ``pebble`` with DNS-01 answered through
    ``named``'s TSIG-signed updates, on one in-memory ACME account."""
    from certmgr.dns.dane_run import make_csr
    from certmgr.interfaces import CertRequest

    issuer = make_issuer({
        "directory": pebble.directory_url, "ca_bundle": str(pebble.ca_bundle), "timeout": 60,
        "challenge": {"type": "dns-01", "provider": "rfc2136", "server": named.server,
                      "tsig_key_file": str(named.key_file), "nameservers": [named.server]},
    }, base_dir)
    accounts = AccountStore()

    def issue(key_type: str, key_pem: bytes, names: tuple[str, ...]) -> bytes:
        req = CertRequest(hostname=names[0], names=names, key_type=key_type, csr_pem=make_csr(key_pem, names))
        return bytes(issuer.issue(req, accounts.context(names[0])).fullchain_pem)

    return issue


@dataclass
class DaneWorld(DaneDns):
    pebble: Pebble


@contextmanager
def dane_world(workdir: Path, *, hosts: tuple[str, ...] = ()) -> Iterator[DaneWorld]:
    """``tests.peers.named.dane_dns`` (the resolver seeing the zone through the lagging
    secondary) plus a pebble that resolves through the primary, for DNS-01; all stopped after."""
    with dane_dns(workdir, hosts=hosts) as dns, running_pebble(workdir / "pebble", dns_server=dns.primary.server) as p:
        yield DaneWorld(dns.primary, dns.secondary, dns.resolver, p)
