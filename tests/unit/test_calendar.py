"""iCalendar invitations and feed, parsed back with icalendar."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import icalendar
import pytest

from certmgr.calendar import feed_ics, renewal_event_ics
from certmgr.messages import CertFacts

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
EXPIRY = datetime(2025, 5, 30, 8, 30, 15, tzinfo=UTC)


def facts(**changes: object) -> CertFacts:
    base = CertFacts(
        hostname="mx1.example.com", names=("mx1.example.com",), key_type="rsa-2048", issuer="le",
        serial="04ab", not_after=EXPIRY, days_left=90, state="verified", last_error=None, attempts=0,
        automatic=True, next_retry=None, config_path="/etc/certmgr/certmgr.toml",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def invite(f: CertFacts, method: str = "REQUEST", sequence: int = 0) -> icalendar.Calendar:
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
