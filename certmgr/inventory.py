"""The status view of every managed certificate (the `status --json` contract)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from certmgr.config import KEY_TYPES
from certmgr.runtime import Runtime


def _iso(dt: datetime | None) -> str | None:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ") if dt else None


def status_rows(rt: Runtime, now: datetime) -> list[dict[str, Any]]:
    rows = []
    for mta, slot in rt.sync_inventory():
        v = rt.store.version(slot.current_version_id)
        dep = rt.store.last_deployment(slot.id) if slot.id is not None else None
        probe = rt.store.last_probe(mta.hostname)
        alg, bits = KEY_TYPES[slot.key_type]
        rows.append({
            "hostname": slot.hostname,
            "names": list(mta.all_names),
            "key_type": v.key_alg if v else alg,
            "key_bits": v.key_bits if v else bits,
            "key_spec": slot.key_type,
            "issuer": slot.issuer,
            "serial": v.serial if v else None,
            "not_before": _iso(v.not_before) if v else None,
            "not_after": _iso(v.not_after) if v else None,
            "days_left": int((v.not_after - now).total_seconds() // 86400) if v else None,
            "state": slot.state,
            "renew_at": _iso(slot.renew_at),
            "deployed": bool(dep and v and dep.version_id == v.id and dep.result == "verified"),
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
