"""When the periodic mail TLS report is due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from certmgr.notify.tls_report import report_due

NOW = datetime(2026, 11, 30, 5, 0, tzinfo=UTC)


def test_first_report_at_once_then_one_period_after_the_last() -> None:
    assert report_due("weekly", None, NOW) and report_due("daily", None, NOW)
    assert not report_due("daily", NOW - timedelta(hours=23, minutes=59), NOW)
    assert report_due("daily", NOW - timedelta(days=1), NOW)
    assert not report_due("weekly", NOW - timedelta(days=6, hours=23), NOW)
    assert report_due("weekly", NOW - timedelta(days=7), NOW)


def test_off_is_never_due() -> None:
    assert not report_due("off", None, NOW)
    assert not report_due("off", NOW - timedelta(days=365), NOW)
