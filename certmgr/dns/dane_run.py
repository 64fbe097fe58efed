"""Carrying out TLSA rollover steps for one MTA, recording each before it acts.

The recorded state (:class:`~certmgr.dns.rollover.Rollover`, JSON) is a row of the store
(:mod:`certmgr.store.dns`, table ``dane_state``); a step is carried out under the row's lease,
so two nodes sharing a database never act on one MTA at once.  Key material stays in files:
``<state_dir>/dane/<hostname>/pending.<alg>.pem`` (a certificate waiting for its records)
and the keys generated ahead, ``<state_dir>/keys/<hostname>/next-<key type>.pem``, where
`renew` finds them (their path and identity are recorded in ``dane_next_key``).  Files are
written atomically, keys 0600.  ``checkpoint(name)`` is called after each record and each
action, so a test can kill the process at every point and resume.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from certmgr.dns.publisher import DnsPublisher, canonical
from certmgr.dns.rollover import Decision, Rollover, Step, begin, decide, deployed, ee_record, records_for_chain
from certmgr.errors import PermanentError
from certmgr.interfaces import CertBundle, DeployRequest, VerifyTarget
from certmgr.runtime import node_id, owner_is_dead
from certmgr.store import Store
from certmgr.store.dns import DANE, DnsStore, default_store
from certmgr.store.statedir import StateDir

log = logging.getLogger(__name__)

#: (key_type, key_pem, names) -> fullchain PEM (leaf first)
#: how long a node may hold one MTA's rollover for one step before another may take it
LEASE_SECONDS = 300

IssueFn = Callable[[str, bytes, tuple[str, ...]], bytes]
DeployFn = Callable[[DeployRequest], object]


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _alg(key_type: str) -> str:
    return "rsa" if key_type.startswith("rsa") else "ecdsa"


def _new_key(key_type: str) -> bytes:
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if key_type.startswith("rsa-"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
    elif key_type == "ecdsa-p256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif key_type == "ecdsa-p384":
        key = ec.generate_private_key(ec.SECP384R1())
    else:
        raise PermanentError(f"DANE: unsupported key type {key_type!r}")
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _public_key(key_pem: bytes) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
    key = serialization.load_pem_private_key(key_pem, None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise PermanentError("DANE: next key is neither RSA nor ECDSA")
    return key.public_key()


def make_csr(key_pem: bytes, names: Sequence[str]) -> bytes:
    key = serialization.load_pem_private_key(key_pem, None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise PermanentError("DANE: next key is neither RSA nor ECDSA")
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def bundle_of(hostname: str, names: tuple[str, ...], key_type: str, key_pem: bytes, fullchain: bytes) -> CertBundle:
    certs = x509.load_pem_x509_certificates(fullchain)
    leaf = certs[0]
    pem = [c.public_bytes(serialization.Encoding.PEM) for c in certs]
    return CertBundle(
        hostname=hostname, names=names, key_type=key_type, key_alg=_alg(key_type), key_pem=key_pem,
        cert_pem=pem[0], chain_pem=b"".join(pem[1:]),
        sha256=hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest(),
        serial=format(leaf.serial_number, "x"), not_after=leaf.not_valid_after_utc,
    )


def next_key_records(db: DnsStore, hostname: str, key_types: Sequence[str], *, fresh: bool) -> tuple[str, ...]:
    """The ``3 1 1`` records of the keys generated ahead for ``hostname``'s next certificates
    (:meth:`~certmgr.store.statedir.StateDir.next_key_path`).  New keys when ``fresh`` (after a
    deployment: the previous ones are served now) or when missing, each written atomically,
    0600, and recorded in the store (path and identity) before its record is returned: a
    record is never published for a key not kept."""
    out = []
    for key_type in key_types:
        path = StateDir(db.state_dir).next_key_path(hostname, key_type)
        made = fresh or not path.exists()
        if made:
            _write(path, _new_key(key_type), 0o600)
        record = ee_record(_public_key(path.read_bytes()))
        if made or key_type not in db.next_keys(hostname):
            db.record_next_key(hostname, key_type, path, record.split()[-1])
        out.append(record)
    return tuple(out)


def journal_dir(state_dir: Path, hostname: str) -> Path:
    """Where one MTA's pending certificates (key and chain) wait: ``<state_dir>/dane/<hostname>/``."""
    return state_dir / "dane" / hostname


def load_state(db: DnsStore, hostname: str, *, port: int, ttl: int, max_records: int | None = None) -> Rollover:
    """The recorded rollover of an MTA, or a fresh one when none is recorded yet."""
    text = db.load(DANE, hostname)
    if text is not None:
        return Rollover.from_json(text)
    st = Rollover(hostname, port=port, ttl=ttl)
    return replace(st, max_records=max_records) if max_records else st


def save_state(db: DnsStore, state: Rollover) -> None:
    db.save(DANE, state.hostname, state.to_json())


def observe(publisher: DnsPublisher, owner: str) -> tuple[frozenset[str], frozenset[str]]:
    """(the TLSA RRset on the first authoritative server, what every server serves)."""
    seen = [publisher.query(s, owner, "TLSA") for s in publisher.authoritative_servers()]
    if not seen:
        return frozenset(), frozenset()
    everywhere = frozenset(v.lower() for v in seen[0].values)
    for s in seen[1:]:
        everywhere &= frozenset(v.lower() for v in s.values)
    return frozenset(v.lower() for v in seen[0].values), everywhere


class DaneMta:
    """One MTA's rollover: its journal directory, its zone, how to issue and deploy."""

    def __init__(self, *, state_dir: Path, hostname: str, publisher: DnsPublisher, issue: IssueFn,
                 deploy: DeployFn, verify: VerifyTarget, key_types: Sequence[str] = ("ecdsa-p256",),
                 usages: Sequence[str] = ("3 1 1",), port: int = 25, ttl: int | None = None,
                 max_records: int | None = None, names: Sequence[str] = (),
                 checkpoint: Callable[[str], None] = lambda name: None, store: Store | None = None,
                 owner: str | None = None) -> None:
        self.state_dir = state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self.db = DnsStore(store or default_store(state_dir), state_dir)
        self.owner = owner or node_id()
        self.dir = journal_dir(state_dir, hostname)
        self.hostname = hostname
        self.names = tuple(dict.fromkeys((hostname, *names)))
        self.publisher = publisher
        self.issue_fn = issue
        self.deploy_fn = deploy
        self.verify = verify
        self.key_types = tuple(key_types)
        self.usages = tuple(usages)
        self.port = port
        self.ttl = ttl or publisher.ttl
        self.max_records = max_records
        self.checkpoint = checkpoint

    # -- the journal --------------------------------------------------------

    def load(self) -> Rollover:
        return load_state(self.db, self.hostname, port=self.port, ttl=self.ttl, max_records=self.max_records)

    def record(self, state: Rollover) -> None:
        save_state(self.db, state)
        self.checkpoint("recorded")

    def _next_key(self, key_type: str) -> bytes:
        next_key_records(self.db, self.hostname, (key_type,), fresh=False)
        return StateDir(self.state_dir).next_key_path(self.hostname, key_type).read_bytes()

    def next_records(self, *, fresh: bool = False) -> tuple[str, ...]:
        """The 3 1 1 records of the keys generated ahead (generating them when missing)."""
        if "3 1 1" not in self.usages:
            return ()
        return next_key_records(self.db, self.hostname, self.key_types, fresh=fresh)

    # -- operations ----------------------------------------------------------

    def adopt(self, served: Sequence[Sequence[x509.Certificate]]) -> Rollover:
        """Start managing an MTA whose served chains' records are already published."""
        st = self.load()
        current = tuple(r for chain in served for r in records_for_chain(chain, self.usages))
        st = replace(st, current=tuple(dict.fromkeys(current)), next=self.next_records())
        self.record(st)
        return st

    def observe(self, state: Rollover) -> tuple[frozenset[str], frozenset[str]]:
        return observe(self.publisher, state.owner)

    def renew(self, now: datetime) -> Rollover:
        """Issue a certificate for each key type with the key generated ahead; it then
        waits (``pending``) until its records have been visible long enough.  Under the
        lease: when another node holds it, nothing is issued."""
        with self.db.lease(DANE, self.hostname, self.owner, LEASE_SECONDS, owner_is_dead) as held:
            return self._renew(now) if held else self.load()

    def _renew(self, now: datetime) -> Rollover:
        st = self.load()
        needs: list[str] = []
        for key_type in self.key_types:
            key_pem = self._next_key(key_type)
            fullchain = self.issue_fn(key_type, key_pem, self.names)
            _write(self.dir / f"pending.{_alg(key_type)}.pem", key_pem + fullchain, 0o600)
            chain = x509.load_pem_x509_certificates(fullchain)
            needs += records_for_chain(chain, self.usages)
        self.checkpoint("issued")
        st = begin(st, tuple(dict.fromkeys(needs)), now)
        self.record(st)
        return st

    def _pending_bundles(self) -> tuple[CertBundle, ...]:
        out = []
        for key_type in self.key_types:
            data = (self.dir / f"pending.{_alg(key_type)}.pem").read_bytes()
            cut = data.index(b"-----BEGIN CERTIFICATE-----")
            out.append(bundle_of(self.hostname, self.names, key_type, data[:cut], data[cut:]))
        return tuple(out)

    def step(self, now: datetime) -> Decision:
        """Look at DNS, decide, record, act: one step, under the lease on this MTA's rollover
        (another node holding it: nothing is done, WAIT_VISIBLE is returned)."""
        with self.db.lease(DANE, self.hostname, self.owner, LEASE_SECONDS, owner_is_dead) as held:
            if not held:
                return Decision(Step.WAIT_VISIBLE, self.load(), why="another node is carrying out a step")
            return self._step(now)

    def _step(self, now: datetime) -> Decision:
        st = self.load()
        published, everywhere = self.observe(st)
        d = decide(st, published, everywhere, now)
        if d.state != st:
            self.record(d.state)
        if d.late:
            log.warning("DANE %s: %s; waiting on DNS longer than expected", st.owner, d.why)
        if d.step in (Step.PUBLISH, Step.RETIRE):
            self.publisher.replace(st.owner, "TLSA", [canonical("TLSA", r) for r in d.records], ttl=st.ttl)
            self.checkpoint("published")
        elif d.step is Step.DEPLOY:
            self.deploy_fn(DeployRequest(self.hostname, self._pending_bundles(), self.verify))
            self.checkpoint("deployed")
            # the keys for the renewal after this one
            self.record(deployed(d.state, self.next_records(fresh=True), now))
        return d

    def run(self, now: Callable[[], datetime], sleep: Callable[[float], None], *, timeout: float = 120) -> None:
        """Steps until nothing is pending and the RRset is as wanted (or ``timeout``)."""
        start = now()
        while True:
            d = self.step(now())
            if d.step is Step.IDLE and not d.state.pending and not d.state.retiring:
                return
            if (now() - start).total_seconds() > timeout:
                raise TimeoutError(f"DANE {d.state.owner}: still at {d.step.value} after {timeout} s: {d.why}")
            if d.step in (Step.WAIT_VISIBLE, Step.WAIT_TTL, Step.IDLE):
                sleep(0.5)
