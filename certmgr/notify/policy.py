"""Which reminders a certificate is owed now: a pure function of its facts and ``now``."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from certmgr.lifecycle import policy

#: an automatic renewal this late past its renewal time is overdue: a person should look
OVERDUE_GRACE = timedelta(days=1)
#: failed attempts at which the failure alert is sent again, louder (then every 10)
ESCALATION_ATTEMPTS = (1, 3, 6, 10)
#: a success notice only for a certificate this recent (not for old ones when on_success is switched on)
SUCCESS_NOTICE_WINDOW = timedelta(days=2)
#: a success notice waits this long at most for the deployment's result, so that it says what happened
DEPLOY_WAIT = timedelta(hours=1)


@dataclass(frozen=True)
class ReminderFacts:
    """What decides whether one certificate needs a person's attention."""

    not_after: datetime | None  # None: no certificate yet
    renew_at: datetime | None
    automatic: bool
    last_result: str | None  # success | failure | None
    attempts: int
    permanent: bool  # the last failure will repeat until someone acts
    version_created: datetime | None = None
    #: deployments of the current certificate that failed, none verified since
    deploy_failures: int = 0
    #: every deploy target has a result for the current certificate (or the MTA has none)
    deploy_settled: bool = True


@dataclass(frozen=True)
class Due:
    kind: str  # threshold:<days> | failure:<level> | failure:permanent | success
    threshold: int | None = None
    level: int = 0


def escalation_level(attempts: int) -> int:
    """0 at the first failure, 1 at the 3rd, 2 at the 6th, 3 at the 10th, then +1 every 10."""
    if attempts >= ESCALATION_ATTEMPTS[-1]:
        return len(ESCALATION_ATTEMPTS) - 1 + (attempts - ESCALATION_ATTEMPTS[-1]) // 10
    return max(0, sum(1 for a in ESCALATION_ATTEMPTS if attempts >= a) - 1)


def needs_person(f: ReminderFacts, now: datetime) -> bool:
    """Will this certificate stay as it is unless someone acts (or looks)?"""
    if not f.automatic or f.last_result == "failure":
        return True
    return f.renew_at is not None and now >= f.renew_at + OVERDUE_GRACE


def due_reminders(f: ReminderFacts, thresholds: Collection[int], on_success: bool, now: datetime,
                  already: Collection[str] = ()) -> list[Due]:
    """The reminders owed now for one certificate version and notifier, minus those in ``already``.

    A success notice waits for the deployment's result (at most DEPLOY_WAIT), so that
    it says whether the certificate is in service.

    Only the nearest threshold passed is sent (a certificate imported with 10 days
    left gets the 14-day reminder, not the 30 and the 14 at once).
    """
    out: list[Due] = []
    if f.not_after is not None and needs_person(f, now):
        days = policy.reminder_threshold_due(f.not_after, tuple(thresholds), now)
        if days is not None:
            out.append(Due(f"threshold:{days}", threshold=days))
    if f.last_result == "failure" and f.attempts >= 1:
        level = escalation_level(f.attempts)
        if f.permanent and "failure:permanent" not in already:
            # a person must act: say so at once, as loudly as an escalation
            out.append(Due("failure:permanent", level=max(1, level)))
        elif f"failure:{level}" not in already and not (level == 0 and "failure:permanent" in already):
            out.append(Due(f"failure:{level}", level=level))
    if f.deploy_failures >= 1:
        level = escalation_level(f.deploy_failures)
        out.append(Due(f"deploy:{level}", level=level))
    if (on_success and f.last_result == "success" and f.not_after is not None
            and f.version_created is not None and now - f.version_created <= SUCCESS_NOTICE_WINDOW
            and (f.deploy_settled or now - f.version_created >= DEPLOY_WAIT)):
        out.append(Due("success"))
    return [d for d in out if d.kind not in already]
