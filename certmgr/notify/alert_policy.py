"""Which notice an MTA's probe result owes people now: a pure function of what was sent and ``now``.

An *episode* runs from the first WARNING or CRITICAL probe of an MTA to its return to OK.  In one
episode each notifier gets:

* ``probe:warning`` when the episode starts with a WARNING;
* ``probe:critical`` when it is (or becomes) CRITICAL — a WARNING that turns CRITICAL escalates;
* ``probe:critical:N`` when it is still CRITICAL :data:`REPEAT_CRITICAL` after the last critical
  notice (N = 1, 2, …): a problem nobody fixed is said again, once a day;
* ``probe:recovered`` when the MTA probes OK again, which ends the episode.

A CRITICAL that eases to WARNING sends nothing (the problem is not over); UNKNOWN (the probe could
not reach the MTA at all, so nothing is known of its certificate) neither starts nor ends an
episode.  The kinds of one episode are unique rows in the reminder queue, so each is queued once
however many processes decide it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

#: a CRITICAL MTA is reported again this long after the last critical notice
REPEAT_CRITICAL = timedelta(hours=24)
#: the order of badness of probe statuses (the worst target decides for an MTA)
RANK = ("ok", "unknown", "warning", "critical")

PREFIX = "probe:"
WARNING, CRITICAL, RECOVERED = "probe:warning", "probe:critical", "probe:recovered"


def worst(statuses: list[str]) -> str:
    return max(statuses, key=RANK.index, default="unknown")


def episode_key(recovered_count: int) -> str:
    """The queue's version key of the current episode: the number of episodes already ended."""
    return f"probe#{recovered_count}"


def probe_notice_due(status: str, sent: Mapping[str, datetime], now: datetime) -> str | None:
    """The notice kind owed now, given the kinds queued in this episode (kind -> when), or None."""
    alerts = [k for k in sent if k != RECOVERED]
    if status == "ok":
        return RECOVERED if alerts and RECOVERED not in sent else None
    if status == "warning":
        return None if alerts else WARNING
    if status != "critical":
        return None
    critical = sorted(t for k, t in sent.items() if k == CRITICAL or k.startswith(CRITICAL + ":"))
    if not critical:
        return CRITICAL
    if now - critical[-1] >= REPEAT_CRITICAL:
        return f"{CRITICAL}:{len(critical)}"
    return None
