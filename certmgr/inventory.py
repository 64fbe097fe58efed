"""The status view of every managed certificate (the `status --json` contract)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from certmgr.config import KEY_TYPES
from certmgr.runtime import Runtime
from certmgr.store import CertVersion


def _iso(dt: datetime | None) -> str | None:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ") if dt else None


def status_rows(rt: Runtime, now: datetime) -> list[dict[str, Any]]:
    rows = []
    for mta, slot in rt.sync_inventory():
        assert slot.id is not None
        v = rt.store.version(slot.current_version_id)
        dep = rt.store.last_deployment(slot.id)
        probe = rt.store.last_probe(mta.hostname)
        alg, bits = KEY_TYPES[slot.key_type]
        served = rt.store.version(_last_verified(rt, slot.id))
        deployed = bool(v and served and served.id == v.id and v.revoked_at is None)
        rows.append({
            "hostname": slot.hostname,
            "names": list(mta.all_names),
            "key_type": v.key_alg if v else alg,
            "key_bits": v.key_bits if v else bits,
            "key_spec": slot.key_type,
            # what issued the current certificate, as recorded then (the config may have renamed it since)
            "issuer": v.issuer if v and v.issuer else slot.issuer,
            "serial": v.serial if v else None,
            "not_before": _iso(v.not_before) if v else None,
            "not_after": _iso(v.not_after) if v else None,
            "days_left": int((v.not_after - now).total_seconds() // 86400) if v else None,
            "state": _state(rt, slot.state, v, served, now),
            "renew_at": _iso(slot.renew_at),
            "deployed": deployed,
            "revoked_at": _iso(v.revoked_at) if v else None,
            "deployment": {"target": dep.target, "result": dep.result, "reason": dep.reason,
                           "verified_at": _iso(dep.verified_at)} if dep else None,
            "last_error": slot.last_error,
            "attempts": slot.attempts,
            "next_retry_at": _iso(slot.next_retry_at),
            "sha256": v.sha256 if v else None,
            "last_probe": {"status": probe.status, "at": _iso(probe.ts), "problems": json.loads(probe.problems)}
            if probe else None,
        })
    return rows


def _last_verified(rt: Runtime, slot_id: int) -> int | None:
    """The version the MTA serves as far as certmgr knows: the last one deployed and verified."""
    return next((d.version_id for d in rt.store.deployments(slot_id) if d.result == "verified"), None)


def _state(rt: Runtime, state: str, current: CertVersion | None, served: CertVersion | None, now: datetime) -> str:
    """The slot's state, corrected by facts that outrank it: a revoked certificate stays
    ``revoked`` until its replacement is served, an expired one is ``expired``."""
    if current is not None and current.revoked_at is not None:
        return "revoked"
    if served is not None and served.revoked_at is not None and (current is None or served.id != current.id):
        return "revoked"  # replaced in the store, but the MTA still serves the revoked one
    if current is not None and now >= current.not_after and state not in ("key_ready", "order_pending", "failed"):
        return "expired"
    return state
