"""The status view of every managed certificate (the `status --json` contract)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from certmgr.config.model import MtaConfig
from certmgr.dns import status as dns_status
from certmgr.pki.keytypes import KEY_TYPES, slot_key
from certmgr.runtime import Runtime
from certmgr.store.rows import DeploymentRow, ProbeRow, SlotRow, VersionRow
from certmgr.times import days_left, iso

#: probe results looked at per host to tell what it serves (a dual MTA's two certificates, retries)
RECENT_PROBES = 4


def status_rows(rt: Runtime, now: datetime) -> list[dict[str, Any]]:
    """One row per slot; the store is read in the same few queries whatever the inventory holds,
    as plain rows of the columns shown (the read path, :attr:`Runtime.rows`)."""
    inventory = _inventory(rt)
    histories = rt.rows.history_rows()
    deployments = rt.rows.latest_deployments()
    probes = rt.rows.recent_probes(RECENT_PROBES)
    recorded = dns_status.snapshot(rt)
    rows = []
    for mta, slot in inventory:
        # a slot not stored yet (a read-only run before the first write) has no history
        history = histories.get(slot.id, []) if slot.id is not None else []
        v = next((h for h in history if h.id == slot.current_version_id), None)
        dep, verified = deployments.get(slot.id, (None, None)) if slot.id is not None else (None, None)
        recent = probes.get(mta.hostname, [])
        probe = recent[0] if recent else None
        alg, bits = KEY_TYPES[slot.key_type]
        served_sha, seen = (_served(verified, slot.key_alg, len(mta.key_types) > 1, history, recent)
                            if slot.id is not None else (None, None))
        served = next((h for h in history if h.sha256 == served_sha), None)
        deployed = bool(v and served_sha == v.sha256 and v.revoked_at is None)
        rows.append({
            "hostname": slot.hostname,
            "names": list(mta.all_names),
            "key_type": v.key_alg if v else alg,
            "key_bits": v.key_bits if v else bits,
            "key_spec": slot.key_type,
            # what issued the current certificate, as recorded then (the config may have renamed it since)
            "issuer": v.issuer if v and v.issuer else slot.issuer,
            "serial": v.serial if v else None,
            "not_before": iso(v.not_before) if v else None,
            "not_after": iso(v.not_after) if v else None,
            "days_left": days_left(v.not_after, now) if v else None,
            "state": _state(slot.state, v, served, served_sha if seen else None, now),
            "renew_at": iso(slot.renew_at),
            "deployed": deployed,
            "revoked_at": iso(v.revoked_at) if v else None,
            "served_sha256": served_sha,
            "deployment": {"target": dep.target, "result": dep.result, "reason": dep.reason,
                           "verified_at": iso(dep.verified_at)} if dep else None,
            "last_error": slot.last_error,
            "attempts": slot.attempts,
            "next_retry_at": iso(slot.next_retry_at),
            "sha256": v.sha256 if v else None,
            "last_probe": {"status": probe.status, "at": iso(probe.ts), "problems": json.loads(probe.problems)}
            if probe else None,
            "dane": dns_status.dane_state(recorded, mta, now),
            "mta_sts": dns_status.mta_sts_state(recorded, rt.config, mta.hostname),
        })
    return rows


def _inventory(rt: Runtime) -> list[tuple[MtaConfig, SlotRow]]:
    """Every slot of the config as stored (a slot not stored yet, in a read-only run before the
    first write, is shown as planned)."""
    if not rt.read_only:  # writes the config's slots first, as every command that may write does
        return [(mta, SlotRow._make(getattr(s, f) for f in SlotRow._fields)) for mta, s in rt.sync_inventory()]
    stored = {s.slot_key: s for s in rt.rows.slot_rows()}
    out = []
    for mta in rt.config.mtas:
        for kt in mta.key_types:
            key = slot_key(mta.hostname, kt)
            out.append((mta, stored.get(key) or SlotRow(
                id=None, hostname=mta.hostname, key_alg=key.key_alg, key_type=kt, issuer=mta.issuer, state="planned",
                current_version_id=None, attempts=0, last_error=None, next_retry_at=None, renew_at=None)))
    return out


def _served(deployment: DeploymentRow | None, key_alg: str, dual: bool, history: list[VersionRow],
            probes: list[ProbeRow]) -> tuple[str | None, bool]:
    """(SHA-256 of the certificate the MTA serves for this slot as far as certmgr knows, whether
    a probe saw it).  The last verified ``deployment``, unless a later probe (``probes``: the
    host's newest, newest first) saw another certificate (the file replaced by hand, a
    configuration reverted)."""
    deployed_at = (deployment.verified_at or deployment.started_at) if deployment else None
    sha = next((h.sha256 for h in history if deployment and h.id == deployment.version_id), None)
    for probe in probes:
        if deployed_at is not None and probe.ts <= deployed_at:
            break
        if dual and json.loads(probe.report).get("key_alg") != key_alg:
            continue  # a probe of the MTA's other certificate
        if probe.served_sha256:
            return probe.served_sha256, True
    return sha, False


def _state(state: str, current: VersionRow | None, served: VersionRow | None, observed: str | None,
           now: datetime) -> str:
    """The slot's state, corrected by facts that outrank it: a revoked certificate stays
    ``revoked`` until its replacement is served; a deployed certificate that a later probe did
    not find served is ``not_served``; an expired one is ``expired``."""
    if current is not None and current.revoked_at is not None:
        return "revoked"
    if served is not None and served.revoked_at is not None and (current is None or served.id != current.id):
        return "revoked"  # replaced in the store, but the MTA still serves the revoked one
    if observed and current is not None and observed != current.sha256 and state == "verified":
        return "not_served"
    if current is not None and now >= current.not_after and state not in ("key_ready", "order_pending", "failed"):
        return "expired"
    return state
