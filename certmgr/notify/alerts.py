"""Tell people when the daemon's probe of an MTA turns WARNING or CRITICAL, and when it recovers.

The policy is :mod:`certmgr.notify.alert_policy` (pure); this module reads what was already
queued, renders the message and queues it in the reminder queue (:mod:`certmgr.store.queue`),
whose unique rows and claims make each notice go out once across restarts and several daemons.
One notice per MTA and notifier: the worst of its targets (one per key algorithm) decides.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from certmgr.config.model import MtaConfig
from certmgr.notify.alert_policy import RECOVERED, episode_key, probe_notice_due, worst
from certmgr.notify.outbox import dump_message
from certmgr.notify.probe_message import ProbeFinding, probe_message
from certmgr.runtime import Runtime
from certmgr.store import ManagedCert, queue

log = logging.getLogger("certmgr.probe")


def queue_probe_notices(rt: Runtime, reports: list[dict[str, Any]], now: datetime) -> int:
    """Queue the notices the probe ``reports`` (of configured MTAs) owe; the number queued."""
    first: dict[str, tuple[MtaConfig, ManagedCert]] = {}
    for mta, slot in rt.sync_inventory():
        first.setdefault(mta.hostname, (mta, slot))  # the MTA's notices hang on its first slot
    by_host: dict[str, list[dict[str, Any]]] = {}
    for r in reports:
        if r.get("hostname") in first:
            by_host.setdefault(r["hostname"], []).append(r)
    history = queue.probe_notices(rt.store, (s.id for _, s in first.values() if s.id is not None))
    queued = 0
    for host, reps in by_host.items():
        mta, slot = first[host]
        assert slot.id is not None
        status = worst([r["status"] for r in reps])
        for name in mta.notify:
            episodes = history.get((slot.id, name), {})
            vkey = episode_key(sum(1 for kinds in episodes.values() if RECOVERED in kinds))
            sent = episodes.get(vkey, {})
            kind = probe_notice_due(status, sent, now)
            if kind is None:
                continue
            findings = [ProbeFinding(r["target"] + (f" ({r['key_alg']})" if r.get("key_alg") else ""),
                                              r["status"], tuple(r["problems"])) for r in reps]
            msg = probe_message(host, kind, status, findings, min(sent.values(), default=now),
                                         str(rt.config.path), now)
            if queue.queue_reminder(rt.store, slot.id, vkey, kind, name, dump_message(msg), now):
                queued += 1
                log.info("probe: %s is %s: queued %s notice for [notify.%s]", host, status.upper(), kind, name)
    return queued
