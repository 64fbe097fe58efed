"""Renewal, retry and reminder policy: tables of cases with ``now`` injected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from certmgr.lifecycle import policy
from certmgr.lifecycle.policy import RenewalFacts, backoff_delay, next_retry, reminder_threshold_due, renewal_time

T0 = datetime(2026, 1, 1, tzinfo=UTC)
D = timedelta(days=1)


@pytest.mark.parametrize(
    "lifetime, renew_before, expect_before_expiry",
    [
        (90 * D, None, 30 * D),  # one third of 90 days
        (45 * D, None, 15 * D),
        (200 * D, None, 200 * D / 3),
        (6 * D, None, 3 * D),  # short-lived: one half
        (9 * D, None, 4.5 * D),
        (90 * D, 20 * D, 20 * D),  # per-MTA override
        (90 * D, 80 * D, 80 * D),  # an early override is kept
    ],
)
def test_renewal_time_rules(lifetime: timedelta, renew_before: timedelta | None,
                            expect_before_expiry: timedelta) -> None:
    facts = RenewalFacts(T0, T0 + lifetime, renew_before=renew_before)
    at = renewal_time(facts, jitter_key="x")
    due = T0 + lifetime - expect_before_expiry
    jitter_cap = min(expect_before_expiry * policy.JITTER_SHARE, policy.JITTER_MAX)
    assert due - jitter_cap <= at <= due


@pytest.mark.parametrize(
    "lifetime, renew_before",
    [
        (5 * D, 30 * D),  # override longer than the lifetime
        (90 * D, 90 * D),  # exactly the lifetime
        (90 * D, 89.9 * D),  # within the jitter of the start
        (timedelta(minutes=2), 3650 * D),  # a short-lived certificate, the largest override
        (5 * 365 * D, 3650 * D),
        (90 * D, None),
        (6 * D, None),
    ],
)
def test_renewal_never_right_after_issuance(lifetime: timedelta, renew_before: timedelta | None) -> None:
    """No renew_before makes a fresh certificate due at once (every run would issue one)."""
    facts = RenewalFacts(T0, T0 + lifetime, renew_before=renew_before)
    for key in ("a", "b", "c", "mx1.example.com/rsa/01"):
        at = renewal_time(facts, jitter_key=key)
        assert at >= T0 + lifetime * policy.MIN_AGE_SHARE, (lifetime, renew_before, at)
        assert at < T0 + lifetime
        assert not policy.is_due(at, T0 + lifetime * policy.MIN_AGE_SHARE / 2)


def test_jitter_is_stable_and_spreads() -> None:
    facts = RenewalFacts(T0, T0 + 90 * D)
    assert renewal_time(facts, jitter_key="a") == renewal_time(facts, jitter_key="a")
    times = {renewal_time(facts, jitter_key=str(i)) for i in range(50)}
    assert len(times) == 50


def test_ari_window_wins() -> None:
    start, end = T0 + 10 * D, T0 + 11 * D
    at = renewal_time(RenewalFacts(T0, T0 + 90 * D, ari_start=start, ari_end=end), jitter_key="h")
    assert start <= at <= end


def test_ari_window_in_the_past_means_now() -> None:
    at = renewal_time(RenewalFacts(T0, T0 + 90 * D, ari_start=T0, ari_end=T0 + timedelta(hours=1)))
    assert policy.is_due(at, T0 + timedelta(hours=2))


@pytest.mark.parametrize(
    "attempts, expected",
    [(1, timedelta(minutes=5)), (2, timedelta(minutes=10)), (3, timedelta(minutes=20)),
     (6, timedelta(minutes=160)), (7, timedelta(hours=4)), (50, timedelta(hours=4))],
)
def test_backoff_sequence(attempts: int, expected: timedelta) -> None:
    assert backoff_delay(attempts) == expected


def test_retry_after_honoured_when_longer() -> None:
    assert backoff_delay(1, retry_after=3600) == timedelta(hours=1)
    assert backoff_delay(5, retry_after=10) == timedelta(minutes=80)


def test_retry_never_after_expiry() -> None:
    not_after = T0 + timedelta(hours=2)
    at = next_retry(10, T0, not_after)
    assert at < not_after and at - T0 <= timedelta(minutes=30)


@pytest.mark.parametrize(
    "days_left, expected",
    [(40, None), (30, 30), (29.5, 30), (14, 14), (8, 14), (7, 7), (2.5, 3), (0.5, 1), (-1, 1)],
)
def test_reminder_threshold(days_left: float, expected: int | None) -> None:
    assert reminder_threshold_due(T0 + timedelta(days=days_left), (30, 14, 7, 3, 1), T0) == expected
