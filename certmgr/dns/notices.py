"""Tell people, through the MTA's notifiers, when its TLSA rollover has waited on DNS for
longer than ``dane.late_after``: an authoritative server does not serve the new record.

One notice per waiting episode and notifier: the row is keyed by when the wait began
(``dane#<waiting_since>``) in the reminder queue, whose unique rows make it go out once
across runs, restarts and several daemons.  Sent by the same outbox as every reminder.
"""

from __future__ import annotations

import logging
from datetime import datetime

from certmgr.config.model import MtaConfig
from certmgr.dns.status import dane_state, snapshot
from certmgr.interfaces import Message
from certmgr.notify.outbox import dump_message
from certmgr.runtime import Runtime
from certmgr.store import queue
from certmgr.times import utc_text

log = logging.getLogger("certmgr.dane")

KIND = "dane-late"


def late_message(hostname: str, state: dict[str, object], config_path: str) -> Message:
    owner, since = str(state["owner"]), datetime.fromisoformat(str(state["waiting_since"]))
    text = (f"The new certificate of {hostname} is not deployed yet: its TLSA record at {owner} has not been "
            f"served by every authoritative server of the zone (\"{state['publish']}\") for long enough since "
            f"{utc_text(since)}.\n\nThe old certificate stays in service with its record, so mail is not "
            "affected; certmgr keeps looking and deploys once every server has served the record for 2 x TTL.\n"
            f"Look at the secondaries of the zone (zone transfers, NOTIFY), then `certmgr -c {config_path} "
            "status` to follow the rollover.\n")
    return Message(subject=f"DANE rollover of {hostname} is waiting on DNS", text=text, severity="warning",
                   hostname=hostname, facts={"kind": KIND, "owner": owner, "waiting_since": state["waiting_since"],
                                             "pending": state.get("pending", [])})


def queue_late_notice(rt: Runtime, mta: MtaConfig, now: datetime) -> int:
    """Queue, once per waiting episode and notifier, the notice of a rollover late on DNS."""
    state = dane_state(snapshot(rt), mta, now)
    if not state or not state["late"] or not mta.notify:
        return 0
    slots = [s for _, s in rt.select([mta.hostname]) if s.id is not None]
    if not slots:
        return 0
    lead = min(s.id for s in slots if s.id is not None)
    payload = dump_message(late_message(mta.hostname, state, str(rt.config.path)))
    queued = 0
    for name in mta.notify:
        if queue.queue_reminder(rt.store, lead, f"dane#{state['waiting_since']}", KIND, name, payload, now):
            queued += 1
            log.warning("DANE %s: waiting on DNS since %s; queued a notice for [notify.%s]", state["owner"],
                        state["waiting_since"], name)
    return queued
