"""`certmgr recover`: rebuild the inventory and history from the state directory.

The database is the inventory; the state directory keeps the files themselves
(``keys/<host>/``, ``certs/<host>/<alg>/<serial>/``, ``accounts/``).  When the database is
deleted or replaced by an empty one, a run that trusted it would order every certificate again
with new keys (breaking DANE pins, wasting CA rate limits) while the MTAs keep serving the old
ones.  So every command that writes first checks :func:`lost_inventory` and refuses; `recover`
reads the files back: one version per stored certificate (with the key that matches it), the
newest valid one with its key and the configured names made current (also over an older current
one, as after restoring an old backup of the database), and the ACME account keys.
Running it again changes nothing.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from certmgr.errors import CertmgrError
from certmgr.lifecycle.issue import renew_at_for
from certmgr.lifecycle.lost import InventoryLost, lost_inventory, refuse_if_lost, stored_certificates
from certmgr.lifecycle.versions import IssuedBy, save_version
from certmgr.pki.certs import CertificateError, cert_facts, parse_chain
from certmgr.pki.keys import PrivateKey, load_key, public_key_matches
from certmgr.pki.keytypes import KEY_TYPES, SlotKey
from certmgr.runtime import Runtime
from certmgr.store import CertVersion, ManagedCert

log = logging.getLogger("certmgr.recovery")

__all__ = ["InventoryLost", "Recovered", "lost_inventory", "recover", "refuse_if_lost", "stored_certificates"]


@dataclass(frozen=True)
class Recovered:
    hostname: str
    key_alg: str
    versions_added: int
    current_serial: str | None
    note: str = ""


def recover(rt: Runtime, now: datetime) -> list[Recovered]:
    """Record every stored certificate of a configured MTA that the database lacks; idempotent."""
    out: list[Recovered] = []
    slots = {s.slot_key: (m, s) for m, s in rt.sync_inventory()}
    stored: dict[tuple[str, str], list[Path]] = {}
    for d in stored_certificates(rt.state.root):
        stored.setdefault((d.parent.parent.name, d.parent.name), []).append(d)
    for (host, alg), dirs in sorted(stored.items()):
        if SlotKey(host, alg) not in slots:
            out.append(Recovered(host, alg, 0, None, f"not in the config; its files stay in {dirs[0].parent}"))
            continue
        mta, slot = slots[SlotKey(host, alg)]
        assert slot.id is not None
        known = {v.sha256 for v in rt.store.versions(slot.id)}
        keys = _keys(rt.state.root / "keys" / host, alg)
        added = 0
        cfg = rt.config.issuers[mta.issuer]
        # the files do not say which account ordered it: the MTA's issuer as configured now
        issued_by = IssuedBy(mta.issuer, cfg.type, cfg.options.get("directory") if cfg.type == "acme" else None)
        for d in dirs:
            version = _version(rt, slot, d, keys, issued_by)
            if version is None or version.sha256 in known:
                continue
            rt.store.add_version(version)
            known.add(version.sha256)
            added += 1
        slot_id = slot.id
        current = rt.store.version(rt.store.slot(slot_id).current_version_id)
        best = _best(rt.store.versions(slot_id), mta.all_names, now)
        # none yet (a deleted database), or an older one (a database restored from an old backup)
        if best is not None and (current is None or best.not_before > current.not_before):
            current = best
            assert current.id is not None
            rt.store.update_slot(slot_id, current_version_id=current.id, state="issued", last_result="success",
                                 attempts=0, last_error=None, next_retry_at=None,
                                 renew_at=renew_at_for(mta, current, f"{host}/{alg}/{current.serial}"))
        if added:
            rt.store.log("recovered", host, alg, {"versions": added, "current": current.serial if current else None})
        out.append(Recovered(host, alg, added, current.serial if current else None,
                             "" if current else "no valid certificate with its key: `renew` orders one"))
    _recover_accounts(rt)
    return out


def _keys(directory: Path, alg: str) -> list[tuple[Path, PrivateKey]]:
    out = []
    for path in sorted(directory.glob(f"{alg}-*.pem")):
        try:
            out.append((path, load_key(path)))
        except CertmgrError as e:  # a damaged key matches nothing; say so and go on
            log.warning("recover: %s", e)
    return out


def _version(rt: Runtime, slot: ManagedCert, directory: Path,
             keys: list[tuple[Path, PrivateKey]], issued_by: IssuedBy) -> CertVersion | None:
    full = directory / "fullchain.pem"
    try:
        certs = parse_chain(full.read_bytes(), str(full))
    except (OSError, CertificateError) as e:
        log.warning("recover: %s skipped: %s", full, e)
        return None
    facts = cert_facts(certs[0])
    if facts.serial != directory.name:
        log.warning("recover: %s holds serial %s, not %s; skipped", full, facts.serial, directory.name)
        return None
    key_path = next((p for p, k in keys if public_key_matches(k, certs[0])), None)
    version = save_version(rt.state, slot, certs, facts, key_path or Path(""), source="recovered",
                           issued_by=issued_by)
    if key_path is None:
        version.key_path = ""  # history only: without its key it can never be served again
    version.key_type = next((kt for kt, spec in KEY_TYPES.items() if spec == (facts.key_alg, facts.key_bits)),
                            f"{facts.key_alg}-{facts.key_bits}")
    version.created_at = datetime.fromtimestamp(full.stat().st_mtime, UTC)
    return version


def _best(versions: list[CertVersion], names: tuple[str, ...], now: datetime) -> CertVersion | None:
    """The newest certificate that could be current: valid now, its key at hand, the configured names."""
    usable = [v for v in versions if v.key_path and v.revoked_at is None and v.not_before <= now < v.not_after
              and sorted(v.all_names) == sorted(names)]
    return max(usable, key=lambda v: v.not_before, default=None)


def _recover_accounts(rt: Runtime) -> None:
    """ACME account keys: recorded without a URI, the CA returns the existing account for the key."""
    for name, issuer in rt.config.issuers.items():
        directory = str(issuer.options.get("directory", ""))
        if not directory:
            continue
        keys = rt.state.account_key_files(name, directory)
        path = keys[0] if keys else None
        if path is not None and rt.store.account(name, directory, socket.gethostname()) is None:
            contact = issuer.options.get("contact", [])
            rt.store.save_account(name, directory, socket.gethostname(), None, str(path),
                                  [str(c) for c in contact] if isinstance(contact, list) else [])
