"""iCalendar invitations and feed, parsed back with icalendar."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import icalendar
import pytest

from certmgr.notify.calendar import alarm_before, feed_ics, renewal_event_ics, renewal_start
from certmgr.notify.cert_status import CertStatus

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
EXPIRY = datetime(2025, 5, 30, 8, 30, 15, tzinfo=UTC)


def facts(**changes: object) -> CertStatus:
    base = CertStatus(
        hostname="mx1.example.com", names=("mx1.example.com",), key_type="rsa-2048", issuer="le",
        serial="04ab", not_after=EXPIRY, days_left=90, state="verified", last_error=None, attempts=0,
        automatic=True, next_retry=None, config_path="/etc/certmgr/certmgr.toml",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def invite(f: CertStatus, method: str = "REQUEST", sequence: int = 0) -> icalendar.Calendar:
    data = renewal_event_ics(f, method=method, sequence=sequence, organizer="certmgr@example.com",
                             attendees=["ops@example.com", "mailto:oncall@example.com"], now=NOW)
    assert data.startswith(b"BEGIN:VCALENDAR\r\n")
    return icalendar.Calendar.from_ical(data)


def event_of(cal: icalendar.Calendar) -> icalendar.Event:
    (event,) = cal.walk("VEVENT")
    assert isinstance(event, icalendar.Event)
    return event


def test_request_invitation() -> None:
    cal = invite(facts(), sequence=4)
    assert cal["METHOD"] == "REQUEST" and "certmgr" in str(cal["PRODID"])
    ev = event_of(cal)
    assert ev["SEQUENCE"] == 4
    assert ev["STATUS"] == "CONFIRMED"
    assert ev.decoded("DTSTART") == datetime(2025, 5, 23, 8, 30, 15, tzinfo=UTC)  # one week before
    assert ev.decoded("DTEND") > ev.decoded("DTSTART")
    assert ev.decoded("DTSTAMP") == NOW
    assert "mx1.example.com" in str(ev["SUMMARY"])
    assert "renew mx1.example.com --force" in str(ev["DESCRIPTION"])
    assert str(ev["ORGANIZER"]) == "mailto:certmgr@example.com"
    attendees: list[Any] = ev.get("ATTENDEE")
    assert [str(a) for a in attendees] == ["mailto:ops@example.com", "mailto:oncall@example.com"]
    assert all(a.params["RSVP"] == "TRUE" for a in attendees)
    (alarm,) = ev.walk("VALARM")
    assert alarm["ACTION"] == "DISPLAY"
    assert alarm.decoded("TRIGGER") == timedelta(days=-1)


def test_times_are_utc_on_the_wire() -> None:
    raw = renewal_event_ics(facts(), sequence=0, organizer="a@example.com", attendees=[], now=NOW)
    assert b"DTSTART:20250523T083015Z" in raw and b"DTSTAMP:20250301T120000Z" in raw


def test_uid_is_stable_across_renewals_and_distinct_per_algorithm() -> None:
    first = event_of(invite(facts()))["UID"]
    renewed = event_of(invite(facts(serial="99ff", not_after=EXPIRY + timedelta(days=60)), sequence=1))
    assert renewed["UID"] == first
    assert event_of(invite(facts(key_type="rsa-4096")))["UID"] == first  # same algorithm, new size
    assert event_of(invite(facts(key_type="ecdsa-p256")))["UID"] != first
    assert event_of(invite(facts(hostname="mx2.example.com")))["UID"] != first


def test_cancel() -> None:
    cal = invite(facts(), method="CANCEL", sequence=5)
    assert cal["METHOD"] == "CANCEL"
    ev = event_of(cal)
    assert ev["STATUS"] == "CANCELLED" and ev["SEQUENCE"] == 5
    assert ev["UID"] == event_of(invite(facts()))["UID"]


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="REQUEST or CANCEL"):
        invite(facts(), method="PUBLISH")
    with pytest.raises(ValueError, match="no certificate yet"):
        invite(facts(not_after=None))
    with pytest.raises(ValueError, match="naive"):
        invite(facts(not_after=datetime(2025, 5, 30)))


def test_feed_has_expiry_and_renewal_per_certificate() -> None:
    certs = [facts(), facts(key_type="ecdsa-p256"), facts(hostname="new.example.com", not_after=None)]
    cal = icalendar.Calendar.from_ical(feed_ics(certs, NOW))
    assert cal.get("METHOD") in (None, "PUBLISH")
    events = cal.walk("VEVENT")
    assert len(events) == 4  # the certificate not issued yet has no dates
    assert len({str(e["UID"]) for e in events}) == 4
    expiries = [e for e in events if "EXPIRES" in str(e["SUMMARY"])]
    assert [e.decoded("DTSTART") for e in expiries] == [EXPIRY, EXPIRY]
    renewals = [e for e in events if str(e["SUMMARY"]).startswith("Renew")]
    assert [e.decoded("DTSTART") for e in renewals] == [EXPIRY - timedelta(days=7)] * 2
    assert feed_ics(certs, NOW) == feed_ics(certs, NOW)  # same input, same feed


H = timedelta(hours=1)
START_CASES = [
    # (id, time left until expiry, expected start relative to NOW (12:00:00))
    ("90 days: a week before expiry", timedelta(days=90), timedelta(days=83)),
    ("exactly a week: now", timedelta(days=7), timedelta(0)),
    ("6 days: the next quarter hour 15 minutes ahead", timedelta(days=6), timedelta(minutes=15)),
    ("2 hours: soon, before it expires", 2 * H, timedelta(minutes=15)),
    ("10 minutes: at the expiry, not after it", timedelta(minutes=10), timedelta(minutes=10)),
    ("expired an hour ago: soon", -H, timedelta(minutes=15)),
]


@pytest.mark.parametrize(("left", "expected"), [c[1:] for c in START_CASES], ids=[c[0] for c in START_CASES])
def test_renewal_start_is_never_in_the_past(left: timedelta, expected: timedelta) -> None:
    start = renewal_start(NOW + left, NOW)
    assert start == NOW + expected
    assert start >= NOW


def test_renewal_start_rounds_up_to_a_quarter_hour() -> None:
    now = datetime(2025, 3, 1, 12, 7, 41, tzinfo=UTC)
    assert renewal_start(now + 2 * H, now) == datetime(2025, 3, 1, 12, 30, tzinfo=UTC)


def test_late_invitation_starts_soon_and_rings_at_once() -> None:
    ev = event_of(invite(facts(not_after=NOW + 2 * H, days_left=0)))
    assert ev.decoded("DTSTART") == NOW + timedelta(minutes=15)
    (alarm,) = ev.walk("VALARM")
    assert alarm.decoded("TRIGGER") == timedelta(0)  # a day before would be in the past
    assert alarm_before(NOW + 3 * 24 * H, NOW) == timedelta(days=1)


def test_one_event_for_both_algorithms_at_the_earlier_expiry() -> None:
    rsa, ecdsa = facts(), facts(key_type="ecdsa-p256", serial="05cd", not_after=EXPIRY - timedelta(days=2))
    data = renewal_event_ics([rsa, ecdsa], sequence=0, organizer="a@example.com", attendees=[], now=NOW,
                             uid="fixed@certmgr")
    ev = event_of(icalendar.Calendar.from_ical(data))
    assert str(ev["UID"]) == "fixed@certmgr"
    assert ev.decoded("DTSTART") == EXPIRY - timedelta(days=9)
    assert str(ev["SUMMARY"]) == "Renew the TLS certificates of mx1.example.com (ecdsa, rsa)"
    assert "04ab" in str(ev["DESCRIPTION"]) and "05cd" in str(ev["DESCRIPTION"])
