"""iCalendar invitations and feeds for certificate renewals (RFC 5545 / iTIP RFC 5546).

Pure: facts and ``now`` in, ICS bytes out.  One invitation per MTA: an MTA
with an RSA and an ECDSA certificate gets one event, dated by the earlier of
the two expiries.  Its UID is kept by the caller, stable per MTA and never
derived from a serial, so each renewal *updates* the one event in people's
calendars (with a higher SEQUENCE) instead of piling up a new event per
certificate.  The event is never placed in the past: with less than a week
left it is set for soon after ``now`` (:func:`renewal_start`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # icalendar is imported by the functions that build a calendar, not by every command
    from icalendar import Alarm, Calendar, Event

from certmgr.notify.cert_status import CertStatus, fix_commands
from certmgr.times import utc_text

PRODID = "-//certmgr//certificate renewals//EN"
#: fixed namespace for uuid5: the same MTA certificate always gets the same UID
UID_NAMESPACE = uuid.UUID("6f0c7d1e-3a55-5b8f-9a43-0c2f1e6b7d21")
#: the renewal event sits this long before expiry: time to act without panic
LEAD_TIME = timedelta(days=7)
EVENT_LENGTH = timedelta(hours=1)
#: with less than LEAD_TIME left, the event is set this soon after ``now`` (rounded up to SLOT)
SOON = timedelta(minutes=15)
SLOT = timedelta(minutes=15)
#: the alarm rings this long before the event, when there is still time for that
ALARM_BEFORE = timedelta(days=1)


def renewal_start(not_after: datetime, now: datetime) -> datetime:
    """When the "renew by" event starts: a week before expiry, or soon when that is past.

    Never before ``now``: with less than a week left the event is set for the next
    quarter hour at least 15 minutes ahead — but not after an expiry still to come.
    """
    planned = _utc(not_after) - LEAD_TIME
    now = _utc(now)
    if planned >= now:
        return planned
    soon = now + SOON
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    soon = epoch + -((epoch - soon) // SLOT) * SLOT  # ceiling to the quarter hour
    return min(soon, _utc(not_after)) if _utc(not_after) > now else soon


def alarm_before(start: datetime, now: datetime) -> timedelta:
    """How long before ``start`` the alarm rings: a day, or at the start when less is left."""
    return ALARM_BEFORE if _utc(start) - _utc(now) >= ALARM_BEFORE else timedelta(0)


def is_late(not_after: datetime, now: datetime) -> bool:
    """Less than LEAD_TIME left: the event could not be placed a week before expiry."""
    return _utc(not_after) - LEAD_TIME < _utc(now)


def event_uid(hostname: str, key_alg: str, kind: str = "renewal") -> str:
    """Stable UID of the event of one MTA certificate (per hostname and key algorithm)."""
    name = f"{kind}/{hostname.lower().rstrip('.')}/{key_alg.lower()}"
    return f"{uuid.uuid5(UID_NAMESPACE, name)}@certmgr"


def renewal_event_ics(
    facts: CertStatus | Sequence[CertStatus],
    *,
    method: str = "REQUEST",
    sequence: int,
    organizer: str,
    attendees: Sequence[str],
    now: datetime,
    uid: str | None = None,
) -> bytes:
    """An invitation (REQUEST) or its cancellation (CANCEL) for renewing one MTA's certificates.

    ``facts`` is one certificate or all of one MTA's (RSA and ECDSA): one event,
    at the earlier expiry.  ``sequence`` must grow with every update of the same
    event, or calendar clients ignore the update; the caller keeps the counter
    and the ``uid`` (default: derived from the hostname and the first algorithm).
    """
    from icalendar import vCalAddress, vText

    if method not in ("REQUEST", "CANCEL"):
        raise ValueError(f"method must be REQUEST or CANCEL, got {method!r}")
    certs = _issued(facts)
    first = certs[0]
    cal = _calendar(method)
    event = _renewal_event(certs, uid or event_uid(first.hostname, first.key_alg), now)
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
        event.add_component(_alarm(first, renewal_start(_expiry(certs), now), now))
    cal.add_component(event)
    return bytes(cal.to_ical())


def feed_ics(facts_list: Sequence[CertStatus], now: datetime) -> bytes:
    """A subscribable feed (METHOD:PUBLISH): per certificate an expiry and a renewal event."""
    from icalendar import Event

    cal = _calendar("PUBLISH")
    cal.add("x-wr-calname", "certmgr: mail server certificates")
    for facts in facts_list:
        if facts.not_after is None:
            continue  # nothing issued yet: no date to show
        renew = _renewal_event([facts], event_uid(facts.hostname, facts.key_alg, "feed-renewal"), now)
        renew.add_component(_alarm(facts, renewal_start(facts.not_after, now), now))
        cal.add_component(renew)
        expiry = Event()
        expiry.add("uid", event_uid(facts.hostname, facts.key_alg, "feed-expiry"))
        expiry.add("dtstamp", _utc(now))
        expiry.add("dtstart", _utc(facts.not_after))
        expiry.add("dtend", _utc(facts.not_after) + timedelta(minutes=15))
        expiry.add("summary", f"TLS certificate of {facts.hostname} ({facts.key_alg}) EXPIRES")
        expiry.add("description", _description([facts]))
        expiry.add("transp", "TRANSPARENT")
        cal.add_component(expiry)
    return bytes(cal.to_ical())


# --------------------------------------------------------------------------


def _calendar(method: str) -> Calendar:
    from icalendar import Calendar

    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", method)
    return cal


def _issued(facts: CertStatus | Sequence[CertStatus]) -> list[CertStatus]:
    """The certificates with an expiry, earliest first; an error if there is none."""
    listed = [facts] if isinstance(facts, CertStatus) else list(facts)
    certs = sorted((f for f in listed if f.not_after is not None), key=_expiry_of)
    if not certs:
        host = listed[0].hostname if listed else "?"
        raise ValueError(f"{host}: no certificate yet, so no expiry to put in a calendar")
    return certs


def _expiry_of(facts: CertStatus) -> datetime:
    assert facts.not_after is not None
    return facts.not_after


def _expiry(certs: Sequence[CertStatus]) -> datetime:
    """The earliest expiry among ``certs`` (all issued)."""
    return min(_expiry_of(f) for f in certs)


def _renewal_event(certs: Sequence[CertStatus], uid: str, now: datetime) -> Event:
    from icalendar import Event

    start = renewal_start(_expiry(certs), now)
    host = certs[0].hostname
    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", _utc(now))
    event.add("dtstart", start)
    event.add("dtend", start + EVENT_LENGTH)
    algs = ", ".join(f.key_alg for f in certs)
    event.add("summary", f"Renew the TLS certificate{'s' if len(certs) > 1 else ''} of {host} ({algs})")
    event.add("description", _description(certs))
    event.add("transp", "TRANSPARENT")  # a reminder, not a meeting: do not block the slot
    return event


def _alarm(facts: CertStatus, start: datetime, now: datetime) -> Alarm:
    from icalendar import Alarm

    alarm = Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("trigger", -alarm_before(start, now))
    alarm.add("description", f"TLS certificate of {facts.hostname} needs renewal")
    return alarm


def _description(certs: Sequence[CertStatus]) -> str:
    facts = certs[0]
    lines = []
    for f in certs:
        what = f"{f.key_alg.upper()} TLS certificate" if len(certs) > 1 else "TLS certificate"
        when = utc_text(_expiry_of(f))
        lines.append(f"The {what} of the mail server {f.hostname} expires on {when}.")
    lines.append(f"Names: {', '.join(facts.names) or facts.hostname}")
    lines += [f"Key: {f.key_type}; issuer: {f.issuer}; serial: {f.serial or 'none'}" for f in certs]
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
