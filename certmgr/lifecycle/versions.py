"""Accept a certificate chain for a slot: check it, store its files, record the version.

Used for ACME issuance and for manual import alike, so both apply the same
checks: the leaf matches the stored key, covers exactly the configured names,
has a strong key, is valid now, and the chain is in order.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509

from certmgr.errors import ImportRejected
from certmgr.pki.certs import CertFacts, CertificateError, cert_facts, check_chain_order, parse_chain, to_pem
from certmgr.pki.keys import PrivateKey, key_type_of, public_key_matches
from certmgr.pki.keytypes import weak_key_reason
from certmgr.store import CertVersion, ManagedCert, utcnow
from certmgr.store.files import write_new_many
from certmgr.store.statedir import StateDir


def check_chain(
    data: bytes, key: PrivateKey, names: tuple[str, ...], hostname: str, *, where: str, now: datetime
) -> tuple[list[x509.Certificate], CertFacts]:
    """Parse and check; raise ImportRejected with the reason."""
    try:
        certs = parse_chain(data, where)
        check_chain_order(certs, where)
    except CertificateError as e:
        raise ImportRejected(f"{hostname}: {e}") from None
    leaf = certs[0]
    facts = cert_facts(leaf)
    weak = weak_key_reason(*key_type_of(leaf.public_key()))
    if weak:
        raise ImportRejected(f"{hostname}: {where}: {weak}")
    if not public_key_matches(key, leaf):
        raise ImportRejected(
            f"{hostname}: {where} does not match the private key certmgr holds for this host "
            f"({facts.key_alg}); was it issued for the CSR from `certmgr csr {hostname}`?"
        )
    want, got = set(names), set(facts.names)
    if want != got:
        missing = ", ".join(sorted(want - got)) or "none"
        extra = ", ".join(sorted(got - want)) or "none"
        raise ImportRejected(
            f"{hostname}: {where} covers {', '.join(sorted(got)) or 'no DNS names'}; "
            f"missing: {missing}; not configured: {extra}"
        )
    # Some ACME profiles issue without a subject CN: accepted (recorded as null), never a failure.
    if facts.subject_cn is not None and facts.subject_cn.lower() not in want:
        raise ImportRejected(f"{hostname}: {where} has subject CN {facts.subject_cn}, which is not a configured name")
    if now < facts.not_before:
        raise ImportRejected(f"{hostname}: {where} is not valid yet (from {facts.not_before:%Y-%m-%d %H:%M} UTC)")
    if now >= facts.not_after:
        raise ImportRejected(f"{hostname}: {where} expired on {facts.not_after:%Y-%m-%d %H:%M} UTC")
    if facts.self_signed and len(certs) == 1:
        raise ImportRejected(f"{hostname}: {where} is self-signed; certmgr imports certificates from a public CA")
    return certs, facts


@dataclass(frozen=True)
class IssuedBy:
    """What issued a certificate, recorded on its version as it was at that moment."""

    issuer: str  # the [issuer.NAME], or "import" for a certificate imported by hand onto an ACME MTA
    issuer_type: str  # acme | manual
    directory: str | None = None  # ACME directory URL
    account_uri: str | None = None  # ACME account that ordered it


def save_version(
    state: StateDir,
    slot: ManagedCert,
    certs: list[x509.Certificate],
    facts: CertFacts,
    key_path: Path,
    *,
    source: str,
    issued_by: IssuedBy,
    order_url: str | None = None,
) -> CertVersion:
    """Write cert/chain/fullchain into a new history directory; return the unsaved row."""
    assert slot.id is not None
    leaf_pem, chain_pem = to_pem(certs[:1]), to_pem(certs[1:])
    directory = state.cert_dir(slot.hostname, slot.key_alg, facts.serial)
    stored_chain = directory / "chain.pem"
    if stored_chain.exists() and stored_chain.read_bytes() != chain_pem:
        # the same certificate with another chain (an import completing its chain): a new
        # directory, since stored history is never overwritten
        digest = hashlib.sha256(chain_pem).hexdigest()[:12]
        directory = state.cert_dir(slot.hostname, slot.key_alg, f"{facts.serial}-{digest}")
    paths = {n: directory / f"{n}.pem" for n in ("cert", "chain", "fullchain")}
    todo = {}
    for name, data in (("cert", leaf_pem), ("chain", chain_pem), ("fullchain", leaf_pem + chain_pem)):
        if paths[name].exists() and paths[name].read_bytes() == data:
            continue  # the same certificate stored by an interrupted run
        todo[paths[name].name] = data
    if todo:
        write_new_many(directory, todo, 0o644)
    return CertVersion(
        managed_id=slot.id,
        serial=facts.serial,
        subject_cn=facts.subject_cn,
        names=json.dumps(list(facts.names)),
        key_type=slot.key_type if facts.key_alg == slot.key_alg else f"{facts.key_alg}-{facts.key_bits}",
        key_alg=facts.key_alg,
        key_bits=facts.key_bits,
        not_before=facts.not_before,
        not_after=facts.not_after,
        sha256=facts.sha256,
        issuer=issued_by.issuer,
        issuer_type=issued_by.issuer_type,
        directory=issued_by.directory,
        account_uri=issued_by.account_uri,
        issuer_cn=facts.issuer_cn,
        issuer_dn=certs[0].issuer.rfc4514_string(),
        source=source,
        cert_path=str(paths["cert"]),
        chain_path=str(paths["chain"]),
        fullchain_path=str(paths["fullchain"]),
        key_path=str(key_path),
        order_url=order_url,
        created_at=utcnow(),
    )
