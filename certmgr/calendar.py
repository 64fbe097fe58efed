"""iCalendar invitations and feeds for certificate renewals (RFC 5545 / iTIP RFC 5546).

Pure: facts and ``now`` in, ICS bytes out.  The invitation's UID is derived
from the MTA hostname and the key algorithm — never from the serial — so each
renewal *updates* the one event in people's calendars (with a higher
SEQUENCE) instead of piling up a new event per certificate.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from icalendar import Alarm, Calendar, Event, vCalAddress, vText

from certmgr.messages import CertFacts, fix_commands

PRODID = "-//certmgr//certificate renewals//EN"
#: fixed namespace for uuid5: the same MTA certificate always gets the same UID
UID_NAMESPACE = uuid.UUID("6f0c7d1e-3a55-5b8f-9a43-0c2f1e6b7d21")
#: the renewal event sits this long before expiry: time to act without panic
LEAD_TIME = timedelta(days=7)
EVENT_LENGTH = timedelta(hours=1)


def event_uid(hostname: str, key_alg: str, kind: str = "renewal") -> str:
    """Stable UID of the event of one MTA certificate (per hostname and key algorithm)."""
    name = f"{kind}/{hostname.lower().rstrip('.')}/{key_alg.lower()}"
    return f"{uuid.uuid5(UID_NAMESPACE, name)}@certmgr"


def renewal_event_ics(
    facts: CertFacts,
    *,
    method: str = "REQUEST",
    sequence: int,
    organizer: str,
    attendees: Sequence[str],
    now: datetime,
) -> bytes:
    """An invitation (REQUEST) or its cancellation (CANCEL) for renewing one certificate.

    ``sequence`` must grow with every update of the same event, or calendar
    clients ignore the update; the caller keeps the counter.
    """
    if method not in ("REQUEST", "CANCEL"):
        raise ValueError(f"method must be REQUEST or CANCEL, got {method!r}")
    if facts.not_after is None:
        raise ValueError(f"{facts.hostname}: no certificate yet, so no expiry to put in a calendar")
    cal = _calendar(method)
    event = _renewal_event(facts, event_uid(facts.hostname, facts.key_alg), now)
    event.add("sequence", sequence)
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    org = vCalAddress(_mailto(organizer))
    org.params["CN"] = vText("certmgr")
    event.add("organizer", org)
    for who in attendees:
        att = vCalAddress(_mailto(who))
        att.params["ROLE"] = vText("REQ-PARTICIPANT")
        att.params["PARTSTAT"] = vText("NEEDS-ACTION")
        att.params["RSVP"] = vText("TRUE")
        event.add("attendee", att, encode=False)
    if method == "REQUEST":
        event.add_component(_alarm(facts))
    cal.add_component(event)
    return bytes(cal.to_ical())


def feed_ics(facts_list: Sequence[CertFacts], now: datetime) -> bytes:
    """A subscribable feed (METHOD:PUBLISH): per certificate an expiry and a renewal event."""
    cal = _calendar("PUBLISH")
    cal.add("x-wr-calname", "certmgr: mail server certificates")
    for facts in facts_list:
        if facts.not_after is None:
            continue  # nothing issued yet: no date to show
        renew = _renewal_event(facts, event_uid(facts.hostname, facts.key_alg, "feed-renewal"), now)
        renew.add_component(_alarm(facts))
        cal.add_component(renew)
        expiry = Event()
        expiry.add("uid", event_uid(facts.hostname, facts.key_alg, "feed-expiry"))
        expiry.add("dtstamp", _utc(now))
        expiry.add("dtstart", _utc(facts.not_after))
        expiry.add("dtend", _utc(facts.not_after) + timedelta(minutes=15))
        expiry.add("summary", f"TLS certificate of {facts.hostname} ({facts.key_alg}) EXPIRES")
        expiry.add("description", _description(facts))
        expiry.add("transp", "TRANSPARENT")
        cal.add_component(expiry)
    return bytes(cal.to_ical())


# --------------------------------------------------------------------------


def _calendar(method: str) -> Calendar:
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", method)
    return cal


def _renewal_event(facts: CertFacts, uid: str, now: datetime) -> Event:
    assert facts.not_after is not None
    start = _utc(facts.not_after) - LEAD_TIME
    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", _utc(now))
    event.add("dtstart", start)
    event.add("dtend", start + EVENT_LENGTH)
    event.add("summary", f"Renew the TLS certificate of {facts.hostname} ({facts.key_alg})")
    event.add("description", _description(facts))
    event.add("transp", "TRANSPARENT")  # a reminder, not a meeting: do not block the slot
    return event


def _alarm(facts: CertFacts) -> Alarm:
    alarm = Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("trigger", timedelta(days=-1))
    alarm.add("description", f"TLS certificate of {facts.hostname} needs renewal")
    return alarm


def _description(facts: CertFacts) -> str:
    assert facts.not_after is not None
    when = _utc(facts.not_after).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"The TLS certificate of the mail server {facts.hostname} expires on {when}.",
        f"Names: {', '.join(facts.names) or facts.hostname}",
        f"Key: {facts.key_type}; issuer: {facts.issuer}; serial: {facts.serial or 'none'}",
    ]
    if facts.automatic:
        lines.append("certmgr renews it automatically. If it has not by this date, check "
                     "`certmgr status` and renew by hand:")
    else:
        lines.append("The issuer is a manual CA: request and import the new certificate:")
    lines += fix_commands(facts)
    return "\n".join(lines)


def _utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError(f"naive datetime {when!r}: certmgr passes aware UTC datetimes")
    return when.astimezone(UTC).replace(microsecond=0)


def _mailto(address: str) -> str:
    return address if address.lower().startswith("mailto:") else f"mailto:{address}"
