"""Times as certmgr states them: days left until a moment, and the two ways a time is written.

Pure functions of aware UTC datetimes (``now`` is passed in; :func:`utcnow` reads the clock).
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The clock, as an aware UTC datetime (also ``certmgr.store.utcnow``)."""
    return datetime.now(UTC)


def days_until(when: datetime, now: datetime) -> float:
    """Days (with fractions) from ``now`` until ``when``; negative once it has passed."""
    return (when - now).total_seconds() / 86400


def days_left(not_after: datetime, now: datetime) -> int:
    """Whole days until expiry (negative once expired): what status, check and messages say."""
    return int((not_after - now).total_seconds() // 86400)


def iso(when: datetime | None) -> str | None:
    """``2026-11-30T04:12:57Z``: the form of times in JSON output (None stays None)."""
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def utc_text(when: datetime) -> str:
    """``2026-11-30 04:12 UTC``: the form of times in sentences people read."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
