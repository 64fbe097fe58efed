"""Revoke a host's current certificates at the CA and mark them for replacement."""

from __future__ import annotations

import functools
from pathlib import Path

from certmgr.errors import CertmgrError, UsageError
from certmgr.interfaces import IssueContext, Revoker
from certmgr.runtime import Runtime
from certmgr.store import CertVersion, utcnow

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
        name = _revoking_issuer(rt, version, mta.issuer)
        issuer = rt.providers.issuer(name) if name else None
        if not isinstance(issuer, Revoker):
            raise UsageError(f"{slot.hostname}: serial {version.serial} was issued by "
                             f"{version.issuer_dn or version.issuer_cn or 'a CA without ACME'} "
                             f"(issuer {version.issuer or mta.issuer}), which certmgr cannot ask to revoke; "
                             "ask that CA to revoke it")
        assert name is not None
        ctx = IssueContext(hostname=slot.hostname,
                           load_account=functools.partial(rt.load_version_account, version, name),
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


def _revoking_issuer(rt: Runtime, version: CertVersion, configured: str) -> str | None:
    """The configured issuer to revoke ``version`` through: the one that issued it, found by its
    CA directory even when it has been renamed since; None for a certificate imported by hand.
    UsageError when the issuer is no longer configured."""
    if version.issuer_type == "manual" or version.source == "import":
        return None
    if not version.directory:  # recorded before versions kept their directory
        return version.issuer if version.issuer in rt.config.issuers else configured
    same_ca = [n for n, c in rt.config.issuers.items() if str(c.options.get("directory", "")) == version.directory]
    if version.issuer in same_ca:
        return version.issuer
    if same_ca:
        return same_ca[0]
    raise UsageError(
        f"serial {version.serial} was issued by issuer {version.issuer} ({version.directory}), which is no "
        f"longer in the config; add [issuer.{version.issuer}] with directory = \"{version.directory}\" back "
        "(the account key is still in the state directory) and run `certmgr revoke` again"
    )
