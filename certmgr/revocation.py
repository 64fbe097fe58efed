"""Revoke a host's current certificates at the CA and mark them for replacement."""

from __future__ import annotations

import functools
from pathlib import Path

from certmgr.errors import CertmgrError, UsageError
from certmgr.interfaces import IssueContext, Revoker
from certmgr.runtime import Runtime
from certmgr.store import utcnow

REASONS = {"unspecified": 0, "keyCompromise": 1, "affiliationChanged": 3, "superseded": 4,
           "cessationOfOperation": 5}


def revoke_host(rt: Runtime, host: str, reason: str) -> tuple[list[str], bool]:
    lines, ok = [], True
    for mta, slot in rt.select([host]):
        assert slot.id is not None
        version = rt.store.version(slot.current_version_id)
        if version is None or version.revoked_at is not None:
            lines.append(f"{slot.hostname} ({slot.key_alg}): no unrevoked certificate")
            continue
        issuer = rt.providers.issuer(mta.issuer)
        if not isinstance(issuer, Revoker):
            raise UsageError(f"issuer {mta.issuer} cannot revoke; ask the CA that issued serial {version.serial}")
        ctx = IssueContext(hostname=slot.hostname, load_account=functools.partial(rt.load_account, mta.issuer),
                           save_account=rt.save_account)
        try:
            issuer.revoke(Path(version.cert_path).read_bytes(), REASONS[reason], ctx)
        except CertmgrError as e:
            ok = False
            lines.append(f"{slot.hostname} ({slot.key_alg}): revocation of serial {version.serial} failed: {e}")
            rt.store.log("revoke_failed", slot.hostname, slot.key_alg, {"serial": version.serial, "error": str(e)})
            continue
        now = utcnow()
        rt.store.update_version(version.id or 0, revoked_at=now, revoke_reason=reason)
        rt.store.update_slot(slot.id, renew_at=now)  # replace it at the next renewal
        rt.store.log("revoked", slot.hostname, slot.key_alg, {"serial": version.serial, "reason": reason})
        lines.append(f"{slot.hostname} ({slot.key_alg}): revoked serial {version.serial} ({reason}); "
                     f"run `certmgr renew {slot.hostname}` to replace it")
    return lines, ok
