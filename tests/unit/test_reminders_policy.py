"""Which reminders are due: a table of cases for the pure decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from certmgr.notify.policy import ReminderFacts, due_reminders, escalation_level, needs_person

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
DAYS = (30, 14, 7, 3, 1)


def facts(days_left: float | None = 60, *, automatic: bool = True, renew_in: float | None = 10,
          result: str | None = "success", attempts: int = 0, permanent: bool = False,
          created_ago: float | None = 40, deploy_failures: int = 0, settled: bool = True) -> ReminderFacts:
    return ReminderFacts(
        not_after=NOW + timedelta(days=days_left) if days_left is not None else None,
        renew_at=NOW + timedelta(days=renew_in) if renew_in is not None else None,
        automatic=automatic, last_result=result, attempts=attempts, permanent=permanent,
        version_created=NOW - timedelta(days=created_ago) if created_ago is not None else None,
        deploy_failures=deploy_failures, deploy_settled=settled,
    )


CASES = [
    # (id, facts, on_success, already, expected kinds)
    ("automatic, healthy, far from expiry", facts(), False, (), []),
    ("automatic, healthy, inside thresholds but renewal not yet due", facts(20, renew_in=1), False, (), []),
    ("automatic, overdue by more than a day", facts(20, renew_in=-2), False, (), ["threshold:30"]),
    ("automatic, due only hours ago: still its job", facts(20, renew_in=-0.5), False, (), []),
    ("manual, 60 days left", facts(60, automatic=False), False, (), []),
    ("manual, 29 days left", facts(29, automatic=False), False, (), ["threshold:30"]),
    ("manual, 10 days left: nearest threshold only", facts(10, automatic=False), False, (), ["threshold:14"]),
    ("manual, 10 days left, 14 sent",
     facts(10, automatic=False), False, ("threshold:30", "threshold:14"), []),
    ("manual, 0.5 days left", facts(0.5, automatic=False), False, ("threshold:3",), ["threshold:1"]),
    ("manual, expired", facts(-2, automatic=False), False, (), ["threshold:1"]),
    ("manual, no certificate yet", facts(None, automatic=False), False, (), []),
    ("first failure", facts(50, result="failure", attempts=1), False, (), ["failure:0"]),
    ("deployment failed once", facts(deploy_failures=1), False, (), ["deploy:0"]),
    ("deployment failed once, told", facts(deploy_failures=2), False, ("deploy:0",), []),
    ("deployment still failing: escalates", facts(deploy_failures=3), False, ("deploy:0",), ["deploy:1"]),
    ("second failure: no new alert", facts(50, result="failure", attempts=2), False, ("failure:0",), []),
    ("third failure escalates",
     facts(50, result="failure", attempts=3), False, ("failure:0",), ["failure:1"]),
    ("sixth failure", facts(50, result="failure", attempts=6), False, ("failure:1",), ["failure:2"]),
    ("tenth failure", facts(50, result="failure", attempts=10), False, (), ["failure:3"]),
    ("twentieth failure", facts(50, result="failure", attempts=20), False, ("failure:3",), ["failure:4"]),
    ("failing and 12 days left: threshold too",
     facts(12, result="failure", attempts=4), False, ("failure:0", "failure:1"), ["threshold:14"]),
    ("failure before any certificate", facts(None, result="failure", attempts=1), False, (), ["failure:0"]),
    ("permanent error at once", facts(50, result="failure", attempts=1, permanent=True), False, (),
     ["failure:permanent"]),
    ("permanent, reported already", facts(50, result="failure", attempts=2, permanent=True), False,
     ("failure:permanent",), []),
    ("permanent, then escalation continues",
     facts(50, result="failure", attempts=3, permanent=False), False, ("failure:permanent",), ["failure:1"]),
    ("success notice when asked", facts(89, created_ago=0.1), True, (), ["success"]),
    ("success notice sent already", facts(89, created_ago=0.1), True, ("success",), []),
    ("no success notice for an old certificate", facts(60, created_ago=30), True, (), []),
    ("no success notice unless asked", facts(89, created_ago=0.1), False, (), []),
    ("success notice waits for the deployment's result", facts(89, created_ago=0.01, settled=False), True, (), []),
    ("success notice stops waiting after an hour", facts(89, created_ago=0.05, settled=False), True, (),
     ["success"]),
]


@pytest.mark.parametrize(("f", "on_success", "already", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_due_reminders(f: ReminderFacts, on_success: bool, already: tuple[str, ...],
                      expected: list[str]) -> None:
    assert [d.kind for d in due_reminders(f, DAYS, on_success, NOW, already)] == expected


def test_custom_thresholds() -> None:
    got = due_reminders(facts(40, automatic=False), (60, 45), False, NOW)
    assert [(d.kind, d.threshold) for d in got] == [("threshold:45", 45)]


def test_failure_levels_and_permanent_is_loud() -> None:
    assert [escalation_level(a) for a in (1, 2, 3, 5, 6, 9, 10, 19, 20, 35)] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 5]
    (d,) = due_reminders(facts(50, result="failure", attempts=1, permanent=True), DAYS, False, NOW)
    assert d.level >= 1


def test_needs_person() -> None:
    assert not needs_person(facts(), NOW)
    assert needs_person(facts(automatic=False), NOW)
    assert needs_person(facts(result="failure", attempts=1), NOW)
    assert needs_person(facts(renew_in=-1.5), NOW)
    assert not needs_person(facts(renew_in=None), NOW)
