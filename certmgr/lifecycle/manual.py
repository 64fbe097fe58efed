"""The flow for CAs without ACME: export a CSR, import the certificate the CA returns.

``csr`` makes (or reuses) the pending key of each slot and prints its CSR, so
running it twice gives the same CSR.  ``import`` checks the offered certificate
against that key and the configured names, and its chain up to a trusted root
(the system store plus ``[certmgr] trust``), before anything is stored.

Both belong to MTAs whose issuer is ``manual``: on an ACME MTA they need
``--force`` (certmgr would otherwise replace the imported certificate at its
next renewal, and a stray pending key would be certified by the next order).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from certmgr.config.model import MtaConfig
from certmgr.errors import ImportRejected, UsageError
from certmgr.lifecycle.issue import pending_key, renew_at_for
from certmgr.lifecycle.versions import IssuedBy, check_chain, save_version
from certmgr.pki.certs import CertificateError, cert_facts, parse_chain, to_pem
from certmgr.pki.keys import load_key
from certmgr.pki.trust import trust_anchors
from certmgr.runtime import Runtime
from certmgr.store import CertVersion, ManagedCert, utcnow
from certmgr.store.files import atomic_write_many


def _manual_only(rt: Runtime, mta: MtaConfig, command: str, force: bool) -> None:
    issuer_type = rt.config.issuers[mta.issuer].type
    if issuer_type != "manual" and not force:
        raise UsageError(
            f"{mta.hostname} gets its certificates from {issuer_type} issuer {mta.issuer}, which certmgr "
            f"renews by itself; `certmgr {command}` is for MTAs with a manual issuer. To install a "
            f"certificate from another CA on {mta.hostname} anyway, run `certmgr {command} --force`"
        )


def export_csr(rt: Runtime, host: str, key_alg: str | None = None, *,
               force: bool = False) -> list[tuple[str, bytes]]:
    """[(key_alg, CSR PEM)] for the host's slots; the keys stay in the state dir."""
    # refused from the config alone, before the inventory is touched
    _manual_only(rt, rt.config.mta(host), "csr", force)
    return _export_csr(rt, rt.select([host]), host, key_alg)


def _export_csr(rt: Runtime, pairs: Sequence[tuple[MtaConfig, ManagedCert]], host: str,
                key_alg: str | None) -> list[tuple[str, bytes]]:
    out = []
    for mta, slot in pairs:
        if key_alg and slot.key_alg != key_alg:
            continue
        pending = pending_key(rt, mta, slot, rt.store.version(slot.current_version_id))
        if pending.new_csr:
            rt.store.log("csr_exported", mta.hostname, slot.key_alg, {"key_type": slot.key_type})
        out.append((slot.key_alg, pending.csr))
    if not out:
        raise UsageError(f"{host} has no {key_alg} key configured")
    return out


def export_csrs(rt: Runtime, directory: Path, *, force: bool = False) -> list[Path]:
    """``csr --batch DIR``: the CSR of every slot of every MTA with a manual issuer (every MTA
    with ``force``) written into ``directory`` as ``HOST.csr`` (``HOST.ALG.csr`` for an MTA
    with two keys), in one process; the files written."""
    by_host: dict[str, list[tuple[MtaConfig, ManagedCert]]] = {}
    for mta, slot in rt.sync_inventory():
        if force or rt.config.issuers[mta.issuer].type == "manual":
            by_host.setdefault(mta.hostname, []).append((mta, slot))
    if not by_host:
        raise UsageError("no MTA gets its certificates from a manual issuer; `certmgr csr --batch --force` "
                         "exports the CSRs of every MTA")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create {directory}: {e.strerror}") from e
    written = []
    for host, pairs in by_host.items():
        csrs = _export_csr(rt, pairs, host, None)
        files = {(f"{host}.csr" if len(csrs) == 1 else f"{host}.{alg}.csr"): pem for alg, pem in csrs}
        atomic_write_many(directory, files, 0o644)
        written += [directory / name for name in files]
    return written


def import_certificate(rt: Runtime, host: str, file: Path, *, force: bool = False) -> str:
    """Check and store the certificate; return a one-line summary.  Nothing is stored on refusal.

    ``force`` allows an ACME MTA and a certificate that expires before the current one."""
    try:
        data = file.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read {file}: {e.strerror}") from e
    try:
        leaf = parse_chain(data, str(file))[0]
    except CertificateError as e:
        raise ImportRejected(f"{host}: {e}") from None
    return _import_into(rt, rt.select([host]), host, file, data, leaf, force=force)


def _import_into(rt: Runtime, pairs: Sequence[tuple[MtaConfig, ManagedCert]], host: str, file: Path, data: bytes,
                 leaf: x509.Certificate, *, force: bool) -> str:
    leaf_alg = cert_facts(leaf).key_alg
    for mta, _slot in pairs[:1]:
        _manual_only(rt, mta, "import", force)
    match = [(m, s) for m, s in pairs if s.key_alg == leaf_alg]
    if not match:
        have = ", ".join(s.key_alg for _, s in pairs)
        raise ImportRejected(f"{host}: {file} holds an {leaf_alg.upper()} certificate but {host} is configured "
                             f"for {have} keys")
    mta, slot = match[0]
    assert slot.id is not None
    same_leaf = [v for v in rt.store.versions(slot.id) if v.sha256 == cert_facts(leaf).sha256]
    key_path = (Path(same_leaf[0].key_path) if same_leaf
                else _key_path_for_import(rt, slot.pending_key_path, slot.current_version_id, host, leaf))
    now = utcnow()
    certs, facts = check_chain(data, load_key(key_path), mta.all_names, host, where=str(file), now=now)
    certs = [certs[0], *trusted_chain(rt, certs, mta.hostname, where=f"{host}: {file}", now=now)]
    current = rt.store.version(slot.current_version_id)
    stored = next((v for v in same_leaf if _chain_of(v) == to_pem(certs[1:])), None)
    if stored is not None and stored.id == slot.current_version_id:
        raise ImportRejected(f"{host}: {file} is already imported (serial {facts.serial})")
    if (current is not None and current.revoked_at is None and facts.not_after < current.not_after
            and current.sha256 != facts.sha256 and not force):
        raise ImportRejected(
            f"{host}: {file} (serial {facts.serial}) expires on {facts.not_after:%Y-%m-%d %H:%M} UTC, before the "
            f"current certificate (serial {current.serial}, expires {current.not_after:%Y-%m-%d %H:%M} UTC); "
            "use `certmgr import --force` to replace it anyway"
        )
    if stored is None:
        issued_by = IssuedBy(mta.issuer if rt.config.issuers[mta.issuer].type == "manual" else "import", "manual")
        stored = rt.store.add_version(save_version(rt.state, slot, certs, facts, key_path, source="import",
                                                   issued_by=issued_by))
    _make_current(rt, mta, slot, stored, now)
    if same_leaf and current is not None and current.sha256 == facts.sha256:
        rt.store.log("chain_completed", host, slot.key_alg, {"serial": facts.serial, "file": str(file)})
        return (f"{host} ({slot.key_alg}): serial {facts.serial} now has its chain "
                f"({len(certs) - 1} certificate(s)); deploy it with `certmgr deploy {host}`")
    rt.store.log("imported", host, slot.key_alg, {"serial": facts.serial, "file": str(file)})
    return f"{host} ({slot.key_alg}): imported serial {facts.serial}, expires {facts.not_after:%Y-%m-%d}"


def import_batch(rt: Runtime, directory: Path, *, force: bool = False) -> tuple[list[str], list[str]]:
    """``import --batch DIR``: import every ``*.pem`` of ``directory`` in one process, each as
    `certmgr import HOST FILE` would (checked, then stored in its own transactions, or not at
    all); the file's name says the host: ``HOST.pem`` (or ``HOST.ALG.pem``, as ``csr --batch``
    names the CSRs).  Returns (one line per imported file, one error per refused file)."""
    try:
        files = sorted(p for p in directory.iterdir() if p.suffix == ".pem")
    except OSError as e:
        raise UsageError(f"cannot read {directory}: {e.strerror}") from e
    if not files:
        raise UsageError(f"{directory} holds no .pem files; name each HOST.pem (a certificate followed by its "
                         "chain)")
    by_host: dict[str, list[tuple[MtaConfig, ManagedCert]]] = {}
    for mta, slot in rt.sync_inventory():
        by_host.setdefault(mta.hostname, []).append((mta, slot))
    done, refused = [], []
    for file in files:
        stem = file.name.removesuffix(".pem")
        base, _, alg = stem.rpartition(".")
        host = stem if stem in by_host else base if alg in ("rsa", "ecdsa") and base in by_host else None
        if host is None:
            refused.append(f"{file}: the name does not name a configured MTA (HOST.pem or HOST.ALG.pem)")
            continue
        try:
            data = file.read_bytes()
            try:
                leaf = parse_chain(data, str(file))[0]
            except CertificateError as e:
                raise ImportRejected(f"{host}: {e}") from None
            done.append(_import_into(rt, by_host[host], host, file, data, leaf, force=force))
            by_host[host] = rt.select([host])  # as imported, for a second file of the same host
        except OSError as e:
            refused.append(f"{file}: cannot read it: {e.strerror}")
        except (ImportRejected, UsageError) as e:
            refused.append(f"{file}: {e}")
    return done, refused


def _make_current(rt: Runtime, mta: MtaConfig, slot: ManagedCert, version: CertVersion, now: datetime) -> None:
    assert slot.id is not None
    rt.store.update_slot(
        slot.id, current_version_id=version.id, state="issued", pending_key_path=None, pending_csr=None,
        pending_order_url=None, pending_since=None, attempts=0, last_error=None, last_result="success",
        last_attempt_at=now, next_retry_at=None, renew_at=renew_at_for(mta, version, f"{mta.hostname}/{slot.key_alg}"),
    )


def _chain_of(version: CertVersion) -> bytes | None:
    try:
        return Path(version.chain_path).read_bytes()
    except OSError:
        return None


def known_intermediates(rt: Runtime) -> list[x509.Certificate]:
    """The CA certificates of every chain certmgr has stored: a leaf imported without its
    intermediate is completed from these (no network: intermediates are never fetched)."""
    seen: dict[str, x509.Certificate] = {}
    for history in rt.store.histories().values():
        for version in history:
            pem = _chain_of(version)
            if not pem:
                continue
            try:
                certs = x509.load_pem_x509_certificates(pem)
            except ValueError:
                continue
            for c in certs:
                seen.setdefault(hashlib.sha256(c.tbs_certificate_bytes).hexdigest(), c)
    return list(seen.values())


def trusted_chain(rt: Runtime, certs: list[x509.Certificate], hostname: str, *, where: str,
                  now: datetime) -> list[x509.Certificate]:
    """The intermediates from ``certs[0]`` up to (not including) a trusted root from the system store
    plus ``[certmgr] trust``.  Checks what a TLS client checks (signatures, validity, CA
    constraints, serverAuth, the name); ImportRejected with the reason otherwise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        anchors = trust_anchors(rt.config.settings.trust)
    if not anchors:
        raise ImportRejected(f"{where}: no trusted roots are available (system store empty and no "
                             "[certmgr] trust file) to verify the chain")
    leaf, offered = certs[0], certs[1:]
    try:
        verifier = (PolicyBuilder().store(Store(list(anchors))).time(now)
                    .build_server_verifier(x509.DNSName(hostname)))
        try:
            path = verifier.verify(leaf, offered)
        except VerificationError:
            # completed from the intermediates of stored chains (read only when needed: every file)
            path = verifier.verify(leaf, [*offered, *known_intermediates(rt)])
    except VerificationError as e:
        raise ImportRejected(f"{where} {_why_untrusted(leaf, offered, anchors, str(e))}") from None
    except ValueError as e:
        raise ImportRejected(f"{where}: cannot verify the chain: {e}") from None
    # the anchor goes to clients too when it is an intermediate trusted directly, never when a root
    return [c for c in path[1:] if c.subject != c.issuer]


def _why_untrusted(leaf: x509.Certificate, offered: list[x509.Certificate],
                   anchors: tuple[x509.Certificate, ...], detail: str) -> str:
    top = offered[-1] if offered else leaf
    subjects = {a.subject for a in anchors}
    if top.issuer == top.subject and top not in anchors:
        return (f"chains to the root {top.subject.rfc4514_string()}, which is not trusted (neither in the "
                f"system store nor in [certmgr] trust): {detail}")
    if not offered and leaf.issuer not in subjects:
        return (f"holds the certificate without the intermediate that issued it "
                f"({leaf.issuer.rfc4514_string()}), and certmgr knows no such intermediate; append the CA's "
                f"intermediate certificate(s) after the certificate: {detail}")
    return f"does not verify to a trusted root: {detail}"


def _key_path_for_import(rt: Runtime, pending: str | None, current_id: int | None, host: str,
                         leaf: x509.Certificate) -> Path:
    if pending and Path(pending).exists():
        return Path(pending)
    current = rt.store.version(current_id)
    if current is not None:
        return Path(current.key_path)  # a re-issue for the same key (reuse_key)
    raise ImportRejected(f"{host}: there is no key waiting for a certificate; run `certmgr csr {host}` first, "
                         "send that CSR to the CA, then import what it returns")
