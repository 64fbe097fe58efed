"""The probe notice policy: a table of (status, notices already queued in the episode, now) cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from certmgr.notify.alert_policy import episode_key, probe_notice_due, worst

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)

CASES = [
    # status, already queued (kind: hours after T0), hours after T0, expected
    ("ok", {}, 0, None),
    ("unknown", {}, 0, None),
    ("warning", {}, 0, "probe:warning"),
    ("critical", {}, 0, "probe:critical"),
    ("warning", {"probe:warning": 0}, 5, None),
    ("critical", {"probe:warning": 0}, 1, "probe:critical"),  # escalation
    ("critical", {"probe:critical": 0}, 23, None),
    ("critical", {"probe:critical": 0}, 24, "probe:critical:1"),  # still critical a day later
    ("critical", {"probe:critical": 0, "probe:critical:1": 24}, 47, None),
    ("critical", {"probe:critical": 0, "probe:critical:1": 24}, 48, "probe:critical:2"),
    ("warning", {"probe:critical": 0}, 1, None),  # eased, not over
    ("unknown", {"probe:critical": 0}, 1, None),  # unreachable: nothing known, nothing said
    ("ok", {"probe:warning": 0}, 1, "probe:recovered"),
    ("ok", {"probe:critical": 0, "probe:critical:1": 24}, 30, "probe:recovered"),
    ("ok", {"probe:critical": 0, "probe:recovered": 1}, 2, None),  # said once
]


@pytest.mark.parametrize(("status", "sent", "hours", "expected"), CASES)
def test_probe_notice_due(status: str, sent: dict[str, int], hours: int, expected: str | None) -> None:
    queued = {k: T0 + h * H for k, h in sent.items()}
    assert probe_notice_due(status, queued, T0 + hours * H) == expected


def test_worst_target_decides_and_episodes_are_numbered() -> None:
    assert worst(["ok", "critical", "warning"]) == "critical"
    assert worst(["ok", "unknown"]) == "unknown"
    assert episode_key(0) == "probe#0" and episode_key(2) == "probe#2"
