"""Carrying out MTA-STS steps for one domain, recording each before it acts.

What went to the web target and what the published id stands for is the domain's row in the
store (:mod:`certmgr.store.dns`, table ``mta_sts_state``); each step runs under that row's
lease, so with several nodes on one database one acts.  The key and certificate of
``mta-sts.<domain>`` stay a file, ``<state_dir>/mta-sts/<domain>/mta-sts.pem`` (0600).
The web target is a deploy target that serves documents (the ``webroot`` deployer:
certificate, key and ``/.well-known/mta-sts.txt`` in one backup/write/reload/undo unit);
once installed, the policy and certificate are fetched over HTTPS as a sender does, and
the install is undone when they are not what is served.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import dns.exception
import dns.resolver
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certmgr.dns.dane_run import IssueFn, _new_key, _write, bundle_of
from certmgr.dns.mtasts import Decision, Published, Served, Step, Wanted, decide, policy_from_mx
from certmgr.dns.publisher import DnsPublisher, txt
from certmgr.errors import DeployError
from certmgr.interfaces import Committing, Deployer, DeployRequest, VerifyTarget
from certmgr.pki.names import comparable_name
from certmgr.runtime import node_id, owner_is_dead
from certmgr.store import Store
from certmgr.store.dns import MTA_STS, DnsStore, default_store

POLICY_PATH = "/.well-known/mta-sts.txt"
#: how long a node may hold one domain for one step (a web deployment and its checks)
LEASE_SECONDS = 300


@dataclass(frozen=True)
class WebInstall:
    """How to settle an installation once it is verified as served, and how to undo it."""

    commit: Callable[[], None]
    undo: Callable[[], None]


class WebTarget(Protocol):
    """Where the policy and the mta-sts certificate are served from."""

    def install(self, policy_text: str, key_pem: bytes, fullchain_pem: bytes) -> WebInstall:
        """Put policy, certificate and key in place and reload."""
        ...


@dataclass(frozen=True)
class DeployerWeb:
    """A ``[deploy.NAME]`` target serving documents (:class:`~certmgr.interfaces.ServesDocuments`,
    e.g. the ``webroot`` deployer) as the web target of one domain."""

    deployer: Deployer
    domain: str
    key_type: str

    def install(self, policy_text: str, key_pem: bytes, fullchain_pem: bytes) -> WebInstall:
        host = f"mta-sts.{self.domain}"
        bundle = bundle_of(host, (host,), self.key_type, key_pem, fullchain_pem)
        request = DeployRequest(host, (bundle,), VerifyTarget(host, 443),
                                documents=((POLICY_PATH, policy_text.encode()),))
        deployer, installed = self.deployer, self.deployer.install(request)

        def commit() -> None:
            if isinstance(deployer, Committing):
                deployer.commit(installed)

        return WebInstall(commit, lambda: deployer.rollback(installed))


def fetch_policy(domain: str, resolver: tuple[str, int] | None, trust_file: Path | None,
                 timeout: float = 5.0) -> tuple[str | None, str | None]:
    """(policy text, SHA-256 of the served certificate) as a sender fetches it: HTTPS on 443,
    certificate verified for ``mta-sts.<domain>``; (None, None) when that fails."""
    host = f"mta-sts.{domain}"
    try:
        res = dns.resolver.Resolver(configure=resolver is None)
        if resolver is not None:
            res.nameservers, res.port = [resolver[0]], resolver[1]
        res.lifetime = timeout
        address = str(res.resolve(host, "A", search=False)[0])
        ctx = ssl.create_default_context(cafile=str(trust_file) if trust_file else None)
        with socket.create_connection((address, 443), timeout=timeout) as raw, \
                ctx.wrap_socket(raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
            conn = http.client.HTTPConnection(host, timeout=timeout)
            conn.sock = tls
            conn.request("GET", POLICY_PATH, headers={"Host": host})
            resp = conn.getresponse()
            body = resp.read().decode("utf-8", "replace")
            if resp.status != 200:
                return None, None
        return body, hashlib.sha256(der or b"").hexdigest()
    except (OSError, ssl.SSLError, dns.exception.DNSException, http.client.HTTPException):
        return None, None


def _unquoted(values: frozenset[str]) -> tuple[str, ...]:
    return tuple(sorted(v.strip('"') for v in values))


class MtaStsDomain:
    def __init__(self, *, state_dir: Path, domain: str, publisher: DnsPublisher, issue: IssueFn,
                 web: WebTarget, mode: str = "testing", max_age: int = 604800,
                 mx_patterns: Sequence[str] = (), rua: Sequence[str] = (), key_type: str = "ecdsa-p256",
                 resolver: tuple[str, int] | None = None, trust_file: Path | None = None,
                 mx_check: Callable[[str], str | None] = lambda host: None,
                 checkpoint: Callable[[str], None] = lambda name: None, store: Store | None = None,
                 owner: str | None = None) -> None:
        self.dir = state_dir / "mta-sts" / domain
        state_dir.mkdir(parents=True, exist_ok=True)
        self.db = DnsStore(store or default_store(state_dir), state_dir)
        self.owner = owner or node_id()
        self.domain = domain
        self.publisher = publisher
        self.issue_fn = issue
        self.web = web
        self.mode, self.max_age = mode, max_age
        self.mx_patterns, self.rua = tuple(mx_patterns), tuple(rua)
        self.key_type = key_type
        self.resolver, self.trust_file = resolver, trust_file
        self.mx_check = mx_check
        self.checkpoint = checkpoint

    def load(self) -> Published:
        text = self.db.load(MTA_STS, self.domain)
        return Published(**json.loads(text)) if text is not None else Published()

    def record(self, rec: Published) -> None:
        self.db.save(MTA_STS, self.domain, json.dumps(asdict(rec), sort_keys=True))
        self.checkpoint("recorded")

    @property
    def certificate_file(self) -> Path:
        """Key then full chain of ``mta-sts.<domain>`` (0600)."""
        return self.dir / "mta-sts.pem"

    def renew_certificate(self) -> None:
        """Issue (again) the mta-sts.<domain> certificate with a fresh key (under the domain's
        lease: nothing is issued while another node holds it)."""
        with self.db.lease(MTA_STS, self.domain, self.owner, LEASE_SECONDS, owner_is_dead) as held:
            if held:
                self._issue()

    def _issue(self) -> None:
        key_pem = _new_key(self.key_type)
        fullchain = self.issue_fn(self.key_type, key_pem, (f"mta-sts.{self.domain}",))
        _write(self.certificate_file, key_pem + fullchain, 0o600)
        self.checkpoint("issued")

    def _cert(self) -> tuple[bytes, bytes, str]:
        data = (self.certificate_file).read_bytes()
        cut = data.index(b"-----BEGIN CERTIFICATE-----")
        leaf = x509.load_pem_x509_certificates(data[cut:])[0]
        return data[:cut], data[cut:], hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()

    def live_mx(self) -> list[str]:
        server = self.publisher.authoritative_servers()[0]
        seen = self.publisher.query(server, self.domain, "MX")
        return sorted(comparable_name(v.split()[1]) for v in seen.values)

    def _verify_served(self, text: str, sha: str, *, stable: int = 3, timeout: float = 15.0) -> None:
        """Wait until ``stable`` fresh fetches in a row get this policy and certificate: after a
        reload, old web server workers may still answer for a moment."""
        deadline = time.monotonic() + timeout
        good = 0
        while good < stable:
            served = fetch_policy(self.domain, self.resolver, self.trust_file)
            good = good + 1 if served == (text, sha) else 0
            if good < stable:
                if time.monotonic() > deadline:
                    raise DeployError(f"MTA-STS {self.domain}: the web server does not serve the new policy and "
                                      f"certificate {timeout:.0f} s after the reload")
                time.sleep(0.2)

    def step(self, now: datetime) -> Decision:
        """One step under the domain's lease; another node holding it: WAIT_SERVED, nothing done."""
        with self.db.lease(MTA_STS, self.domain, self.owner, LEASE_SECONDS, owner_is_dead) as held:
            if not held:
                return Decision(Step.WAIT_SERVED, self.load(), why="another node is carrying out a step")
            return self._step(now)

    def _step(self, now: datetime) -> Decision:
        if not (self.certificate_file).exists():
            self._issue()
        key_pem, fullchain, sha = self._cert()
        rec = self.load()
        mx = self.live_mx()
        policy = policy_from_mx(self.mode, self.max_age, mx, self.mx_patterns)
        text, served_sha = fetch_policy(self.domain, self.resolver, self.trust_file)
        server = self.publisher.authoritative_servers()[0]
        sts = self.publisher.query(server, f"_mta-sts.{self.domain}", "TXT")
        rpt = self.publisher.query(server, f"_smtp._tls.{self.domain}", "TXT")
        served = Served(text, served_sha, _unquoted(sts.values), _unquoted(rpt.values))
        d = decide(rec, Wanted(policy, sha, self.rua), served, mx, {h: self.mx_check(h) for h in mx}, now)
        if d.step is Step.DEPLOY_WEB:  # recorded after: a crash before it deploys again
            installed = self.web.install(policy.text(), key_pem, fullchain)
            self.checkpoint("deployed")
            try:
                self._verify_served(policy.text(), sha)
            except DeployError:
                installed.undo()  # what was served before stays served: its id is still the published one
                raise
            installed.commit()
            self.record(d.record)
            return d
        if d.record != rec:
            self.record(d.record)
        if d.step is Step.PUBLISH_ID:
            self.publisher.replace(f"_mta-sts.{self.domain}", "TXT", [txt(d.value)])
            self.checkpoint("published")
        elif d.step is Step.PUBLISH_TLSRPT:
            self.publisher.replace(f"_smtp._tls.{self.domain}", "TXT", [txt(d.value)])
            self.checkpoint("published")
        return d
