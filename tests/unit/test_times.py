"""Days left and the two ways certmgr writes a time, defined once (certmgr.times)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from certmgr.times import days_left, days_until, iso, utc_text

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("delta", "left"), [
    (timedelta(days=30), 30), (timedelta(days=1), 1), (timedelta(days=1, seconds=-1), 0),
    (timedelta(seconds=1), 0), (timedelta(seconds=-1), -1), (timedelta(days=-2), -2),
])
def test_days_left_counts_whole_days_and_goes_negative_once_expired(delta: timedelta, left: int) -> None:
    assert days_left(NOW + delta, NOW) == left
    assert days_until(NOW + delta, NOW) == pytest.approx(delta.total_seconds() / 86400)


def test_the_two_forms_of_a_time() -> None:
    assert iso(NOW) == "2026-06-01T12:00:00Z"
    assert iso(None) is None
    assert utc_text(NOW.astimezone(timezone(timedelta(hours=2)))) == "2026-06-01 12:00 UTC"
