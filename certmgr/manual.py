"""The flow for CAs without ACME: export a CSR, import the certificate the CA returns.

``csr`` makes (or reuses) the pending key of each slot and prints its CSR, so
running it twice gives the same CSR.  ``import`` checks the offered certificate
against that key and the configured names before anything is stored.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from certmgr.errors import ImportRejected, UsageError
from certmgr.keys import CertificateError, cert_facts, load_key, make_csr, parse_chain
from certmgr.lifecycle import _key_for, renew_at_for
from certmgr.runtime import Runtime
from certmgr.store import utcnow
from certmgr.versions import check_chain, save_version


def export_csr(rt: Runtime, host: str, key_alg: str | None = None) -> list[tuple[str, bytes]]:
    """[(key_alg, CSR PEM)] for the host's slots; the keys stay in the state dir."""
    out = []
    for mta, slot in rt.select([host]):
        if key_alg and slot.key_alg != key_alg:
            continue
        slot_id = slot.id
        assert slot_id is not None
        _, key = _key_for(rt, mta, slot)
        slot = rt.store.slot(slot_id)
        if slot.pending_csr:
            csr = slot.pending_csr.encode()
        else:
            csr = make_csr(key, mta.hostname, mta.names)
            rt.store.update_slot(slot_id, pending_csr=csr.decode())
            rt.store.log("csr_exported", mta.hostname, slot.key_alg, {"key_type": slot.key_type})
        out.append((slot.key_alg, csr))
    if not out:
        raise UsageError(f"{host} has no {key_alg} key configured")
    return out


def import_certificate(rt: Runtime, host: str, file: Path) -> str:
    """Check and store the certificate; return a one-line summary.  Nothing is stored on refusal."""
    try:
        data = file.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read {file}: {e.strerror}") from e
    try:
        leaf = parse_chain(data, str(file))[0]
    except CertificateError as e:
        raise ImportRejected(f"{host}: {e}") from None
    leaf_alg = cert_facts(leaf).key_alg
    pairs = rt.select([host])
    match = [(m, s) for m, s in pairs if s.key_alg == leaf_alg]
    if not match:
        have = ", ".join(s.key_alg for _, s in pairs)
        raise ImportRejected(f"{host}: {file} holds an {leaf_alg.upper()} certificate but {host} is configured "
                             f"for {have} keys")
    mta, slot = match[0]
    assert slot.id is not None
    key_path = _key_path_for_import(rt, slot.pending_key_path, slot.current_version_id, host, leaf)
    now = utcnow()
    certs, facts = check_chain(data, load_key(key_path), mta.all_names, host, where=str(file), now=now)
    if rt.store.version_by_sha256(facts.sha256) is not None:
        raise ImportRejected(f"{host}: {file} is already imported (serial {facts.serial})")
    version = rt.store.add_version(save_version(rt.state, slot, certs, facts, key_path, source="import"))
    rt.store.update_slot(
        slot.id, current_version_id=version.id, state="issued", pending_key_path=None, pending_csr=None,
        pending_order_url=None, pending_since=None, attempts=0, last_error=None, last_result="success",
        last_attempt_at=now, next_retry_at=None, renew_at=renew_at_for(mta, version, f"{host}/{slot.key_alg}"),
    )
    rt.store.log("imported", host, slot.key_alg, {"serial": facts.serial, "file": str(file)})
    return f"{host} ({slot.key_alg}): imported serial {facts.serial}, expires {facts.not_after:%Y-%m-%d}"


def _key_path_for_import(rt: Runtime, pending: str | None, current_id: int | None, host: str,
                         leaf: x509.Certificate) -> Path:
    if pending and Path(pending).exists():
        return Path(pending)
    current = rt.store.version(current_id)
    if current is not None:
        return Path(current.key_path)  # a re-issue for the same key (reuse_key)
    raise ImportRejected(f"{host}: there is no key waiting for a certificate; run `certmgr csr {host}` first, "
                         "send that CSR to the CA, then import what it returns")
