"""When to renew, when to retry, when to remind: pure functions of facts and ``now``.

Nothing here reads the clock, the database or the network; tests drive every
function with tables of cases.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

#: first retry after a failure, and the ceiling the delay grows to
BACKOFF_FIRST = timedelta(minutes=5)
BACKOFF_MAX = timedelta(hours=4)
#: short-lived certificates (under this lifetime) renew at half life, others at two thirds
SHORT_LIVED = timedelta(days=10)
#: renewals are spread by up to this share of the renewal window
JITTER_SHARE = 0.05
JITTER_MAX = timedelta(hours=12)
#: a certificate is never renewed before this share of its lifetime has passed, whatever
#: ``renew_before`` says: a longer override must not turn every run into an issuance
MIN_AGE_SHARE = 0.1


@dataclass(frozen=True)
class RenewalFacts:
    not_before: datetime
    not_after: datetime
    #: per-MTA override: renew this long before expiry
    renew_before: timedelta | None = None
    #: the CA's suggested window (ARI), when it offers one
    ari_start: datetime | None = None
    ari_end: datetime | None = None


def _fraction(key: str) -> float:
    """A stable number in [0, 1) derived from ``key``: the same slot gets the same jitter."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


def renewal_time(facts: RenewalFacts, *, jitter_key: str = "") -> datetime:
    """When this certificate should be renewed.

    ARI window (RFC 9773): a point inside the CA's window.  Otherwise one third of
    the lifetime before expiry (one half for lifetimes under 10 days), or the
    per-MTA ``renew_before``; minus a stable jitter so renewals spread out.  Never
    before :data:`MIN_AGE_SHARE` of the lifetime has passed (a ``renew_before`` as long
    as the lifetime would otherwise make every run issue a new certificate).
    """
    if facts.ari_start is not None and facts.ari_end is not None and facts.ari_end >= facts.ari_start:
        span = facts.ari_end - facts.ari_start
        return facts.ari_start + span * _fraction(jitter_key)
    lifetime = facts.not_after - facts.not_before
    earliest = facts.not_before + max(lifetime, timedelta(0)) * MIN_AGE_SHARE
    if facts.renew_before is not None:
        before = min(facts.renew_before, facts.not_after - earliest)
    elif lifetime < SHORT_LIVED:
        before = lifetime / 2
    else:
        before = lifetime / 3
    due = facts.not_after - before
    jitter = min(before * JITTER_SHARE, JITTER_MAX) * _fraction(jitter_key)
    return max(due - jitter, earliest)


def is_due(renew_at: datetime | None, now: datetime) -> bool:
    return renew_at is None or now >= renew_at


def backoff_delay(attempts: int, *, retry_after: float | None = None) -> timedelta:
    """Delay before retry number ``attempts`` (1 = first failure): 5 min doubling to 4 h.

    A server's Retry-After wins when it asks for longer.
    """
    n = min(max(1, attempts), 20)  # 2**19 already passes the ceiling; bigger overflows timedelta
    delay: timedelta = min(BACKOFF_FIRST * (2 ** (n - 1)), BACKOFF_MAX)
    if retry_after is not None and retry_after > delay.total_seconds():
        delay = timedelta(seconds=min(retry_after, 86400))
    return delay


def next_retry(
    attempts: int, now: datetime, not_after: datetime | None, *, retry_after: float | None = None
) -> datetime:
    """When to try again: never later than shortly before the certificate expires."""
    at = now + backoff_delay(attempts, retry_after=retry_after)
    if not_after is not None and now < not_after:
        # while the certificate still lives, keep trying well before it dies
        latest = now + max((not_after - now) / 4, timedelta(minutes=1))
        at = min(at, latest)
    return at


def reminder_threshold_due(
    not_after: datetime, thresholds: tuple[int, ...], now: datetime
) -> int | None:
    """The smallest configured threshold (days before expiry) that ``now`` has passed, or None."""
    left = not_after - now
    passed = [d for d in thresholds if left <= timedelta(days=d)]
    return min(passed) if passed else None
