"""Reminders and calendar invitations delivered to a real SMTP server (aiosmtpd, STARTTLS).

Manual-CA certificates are made the way an administrator makes them: `certmgr csr`,
the CSR signed by a (test) CA, `certmgr import`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import icalendar
import pytest

from certmgr.config.load import load_config
from certmgr.lifecycle.manual import export_csr, import_certificate
from certmgr.lifecycle.renew import renew_many
from certmgr.notify.calendar import event_uid
from certmgr.notify.reminders import process
from certmgr.runtime import Runtime
from certmgr.store import queue
from tests.e2e.conftest import Cli
from tests.peers.smtpd import Received, SmtpServer
from tests.peers.testca import TestCA
from tests.peers.util import free_port

pytestmark = pytest.mark.integration

HOST = "mx1.example.com"
MTA = f"""
[[mta]]
hostname = "{HOST}"
issuer = "corp"
notify = ["ops"]
"""
OTHER = """
[[mta]]
hostname = "mx9.example.com"
issuer = "corp"
"""


#: the corporate CA of the manual issuer; its root is trusted (an import is verified up to it)
CORP = TestCA("certmgr test corporate CA")


def write_config(tmp_path: Path, smtpd: SmtpServer, mtas: str, *, issuer: str = "", calendar: bool = True) -> Path:
    path = tmp_path / "certmgr.toml"
    trust = tmp_path / "trust.pem"
    trust.write_bytes(Path(smtpd.ca_file).read_bytes() + CORP.root_pem)
    path.write_text(f"""
[certmgr]
state_dir = "{tmp_path / 'state'}"
trust = "{trust}"

[issuer.corp]
type = "manual"
{issuer}
{smtpd.notify_toml()}
calendar = {str(calendar).lower()}
{mtas}
""")
    return path


def runtime(config: Path) -> Runtime:
    return Runtime(load_config(config))


def import_manual(rt: Runtime, tmp_path: Path, ca: TestCA, days: float) -> str:
    ((_alg, csr),) = export_csr(rt, HOST)
    path = tmp_path / f"signed-{days}.pem"
    path.write_bytes(ca.sign_csr(csr, days=days))
    import_certificate(rt, HOST, path)
    version = rt.store.version(rt.store.slots()[0].current_version_id)
    assert version is not None
    return version.serial


def calendar_parts(mail: Received) -> list[Any]:
    return [p for p in mail.message.walk() if p.get_content_type() == "text/calendar"]


def ics_of(mail: Received) -> icalendar.Calendar:
    parts = calendar_parts(mail)
    assert parts, f"no calendar part in {mail.message['Subject']!r}"
    data = parts[-1].get_payload(decode=True)
    assert isinstance(data, bytes)
    return icalendar.Calendar.from_ical(data)


def event_of(cal: icalendar.Calendar) -> Any:
    (event,) = cal.walk("VEVENT")
    return event


def subjects(smtpd: SmtpServer) -> list[str]:
    return [str(m.message["Subject"]) for m in smtpd.messages]


def test_manual_certificate_reminders_and_calendar_lifecycle(tmp_path: Path, smtpd: SmtpServer) -> None:
    ca = CORP
    config = write_config(tmp_path, smtpd, MTA)
    rt = runtime(config)
    serial1 = import_manual(rt, tmp_path, ca, days=20)
    out = process(rt)
    assert sorted(o.kind for o in out if o.action == "sent") == ["calendar:REQUEST", "threshold:30"]
    assert len(smtpd.messages) == 2 and all(m.tls for m in smtpd.messages)

    reminder = next(m for m in smtpd.messages if "expires in" in str(m.message["Subject"]))
    assert f"{HOST}: certificate expires in 19 days" in str(reminder.message["Subject"])
    text = reminder.message.get_body(("plain",))
    assert text is not None and "30-day reminder" in text.get_content()
    assert f"certmgr -c {config} import {HOST}" in text.get_content()
    assert not calendar_parts(reminder), "the invitation goes out once, in the calendar mail"
    invite = next(m for m in smtpd.messages if "calendar" in str(m.message["Subject"]))
    cal = ics_of(invite)
    assert str(cal["METHOD"]) == "REQUEST"
    ev = event_of(cal)
    assert str(ev["UID"]) == event_uid(HOST, "rsa")
    assert int(ev["SEQUENCE"]) == 0
    current = rt.store.version(rt.store.slots()[0].current_version_id)
    assert current is not None
    assert ev.decoded("DTSTART") == current.not_after.replace(microsecond=0) - timedelta(days=7)
    assert ev.walk("VALARM"), "the invitation carries an alarm"
    rt.close()

    # again, and after a restart (a new process): nothing is sent twice
    assert [o for o in process(runtime(config)) if o.action == "sent"] == []
    assert len(smtpd.messages) == 2

    # the CA issues a new certificate (imported): one update, SEQUENCE + 1, same UID, new DTSTART
    rt = runtime(config)
    serial2 = import_manual(rt, tmp_path, ca, days=25)
    assert serial2 != serial1
    out = process(rt)
    assert sorted(o.kind for o in out if o.action == "sent") == ["calendar:REQUEST", "threshold:30"]
    update = next(m for m in smtpd.messages[2:] if "calendar" in str(m.message["Subject"]))
    ev = event_of(ics_of(update))
    assert str(ev["UID"]) == event_uid(HOST, "rsa") and int(ev["SEQUENCE"]) == 1
    new_start = ev.decoded("DTSTART")
    assert new_start - datetime.now(UTC) > timedelta(days=17)
    assert process(rt) == [] and len(smtpd.messages) == 4
    rt.close()

    # the MTA leaves the config: the event is cancelled, once
    config = write_config(tmp_path, smtpd, OTHER)
    rt = runtime(config)
    out = process(rt)
    assert [(o.kind, o.action) for o in out] == [("calendar:CANCEL", "sent")]
    cancel = ics_of(smtpd.messages[-1])
    assert str(cancel["METHOD"]) == "CANCEL"
    ev = event_of(cancel)
    assert str(ev["UID"]) == event_uid(HOST, "rsa") and int(ev["SEQUENCE"]) == 2
    assert str(ev["STATUS"]) == "CANCELLED" and not ev.walk("VALARM")
    assert process(rt) == [] and len(smtpd.messages) == 5
    rt.close()


def test_certificate_with_two_hours_left_gets_an_event_in_the_future(tmp_path: Path, smtpd: SmtpServer) -> None:
    ca = CORP
    rt = runtime(write_config(tmp_path, smtpd, MTA))
    try:
        import_manual(rt, tmp_path, ca, days=2 / 24)
        before = datetime.now(UTC)
        out = process(rt)
        assert sorted(o.kind for o in out if o.action == "sent") == ["calendar:REQUEST", "threshold:1"]
        invites = [m for m in smtpd.messages if calendar_parts(m)]
        current = rt.store.version(rt.store.slots()[0].current_version_id)
        assert current is not None
        expiry = current.not_after
        for mail in invites:
            start = event_of(ics_of(mail)).decoded("DTSTART")
            assert before <= start <= expiry, f"the event is set for {start}, now is {before}"
        assert len(invites) == 1, "one invitation"
        ev = event_of(ics_of(invites[0]))
        (alarm,) = ev.walk("VALARM")
        assert alarm.decoded("TRIGGER") == timedelta(0), "no alarm a day before an event two hours away"
        text = invites[0].message.get_body(("plain",))
        assert text is not None and "as soon as possible" in text.get_content()
        assert "one week before it expires" not in text.get_content()
    finally:
        rt.close()


def test_two_notifiers_to_one_address_send_once(tmp_path: Path, smtpd: SmtpServer) -> None:
    ca = CORP
    second = (smtpd.notify_toml("ops-again", '"OPS@example.com"') + "calendar = true\n\n"
              + smtpd.notify_toml("security", '"security@example.com"'))
    mta = MTA.replace('notify = ["ops"]', 'notify = ["ops", "ops-again", "security"]')
    rt = runtime(write_config(tmp_path, smtpd, second + mta))
    try:
        import_manual(rt, tmp_path, ca, days=20)
        out = process(rt)
        assert sorted((o.notifier, o.kind) for o in out if o.action == "sent") == [
            ("ops", "calendar:REQUEST"), ("ops", "threshold:30"), ("security", "threshold:30")]
        to_ops = [m for m in smtpd.messages if m.rcpt_tos == ["ops@example.com"]]
        assert len(to_ops) == 2 and len(smtpd.messages) == 3, subjects(smtpd)
        assert process(rt) == [] and len(smtpd.messages) == 3
    finally:
        rt.close()


def test_dropping_a_key_type_keeps_the_mta_event(tmp_path: Path, smtpd: SmtpServer) -> None:
    """A dual MTA drops RSA but stays configured: its one event keeps its UID and is
    updated to the ECDSA certificate, never cancelled as if the MTA were gone."""
    ca = CORP
    dual = MTA.replace('notify =', 'key = ["rsa-2048", "ecdsa-p256"]\nnotify =')
    rt = runtime(write_config(tmp_path, smtpd, dual))
    for alg, csr in export_csr(rt, HOST):
        signed = tmp_path / f"signed-{alg}.pem"
        signed.write_bytes(ca.sign_csr(csr, days=20 if alg == "rsa" else 40))
        import_certificate(rt, HOST, signed)
    process(rt)
    (first,) = [m for m in smtpd.messages if calendar_parts(m)]
    event = event_of(ics_of(first))
    uid = str(event["UID"])
    assert event.decoded("DTSTART") - datetime.now(UTC) < timedelta(days=14), "dated by the earlier expiry"
    sent = len(smtpd.messages)
    rt.close()

    rt = runtime(write_config(tmp_path, smtpd, MTA.replace('notify =', 'key = "ecdsa-p256"\nnotify =')))
    try:
        out = process(rt)
        assert "calendar:CANCEL" not in [o.kind for o in out], out
        cals = [ics_of(m) for m in smtpd.messages[sent:] if calendar_parts(m)]
        assert [str(c["METHOD"]) for c in cals] == ["REQUEST"]
        ev = event_of(cals[0])
        assert str(ev["UID"]) == uid and int(ev["SEQUENCE"]) == 1
        assert ev.decoded("DTSTART") - datetime.now(UTC) > timedelta(days=30), "dated by the ECDSA certificate"
        assert process(rt) == []
    finally:
        rt.close()


def test_relay_down_keeps_reminders_queued_then_sends_each_once(tmp_path: Path, smtpd: SmtpServer) -> None:
    ca = CORP
    config = write_config(tmp_path, smtpd, MTA, calendar=False)
    rt = runtime(config)
    import_manual(rt, tmp_path, ca, days=10)
    smtpd.stop()

    out = process(rt)
    assert [(o.kind, o.action) for o in out] == [("threshold:14", "failed")]
    assert "cannot deliver" in out[0].detail
    cli = Cli(config)
    r = cli("remind", check=1)
    assert "could not be sent" in r.stderr and "stay queued" in r.stderr
    (row,) = queue.unsent_reminders(rt.store)
    assert row.attempts == 2 and row.last_error and row.claimed_by is None
    listed = cli("remind", "--dry-run", check=0)
    assert "threshold:14" in listed.stdout and "pending" in listed.stdout

    smtpd.start()
    r = cli("remind", check=0)
    assert "sent" in r.stdout
    assert subjects(smtpd) == [f"[certmgr] {HOST}: certificate expires in 9 days"]
    assert queue.unsent_reminders(rt.store) == []
    cli("remind", check=0)
    assert process(rt) == [] and len(smtpd.messages) == 1
    rt.close()


def test_failed_renewal_alerts_at_once_and_escalates(tmp_path: Path, smtpd: SmtpServer) -> None:
    dead = free_port()  # an ACME server that is not there: every renewal fails
    issuer = f"""
[issuer.acme]
type = "acme"
directory = "https://127.0.0.1:{dead}/dir"
contact = ["mailto:postmaster@example.com"]
challenge = {{ type = "http-01", mode = "standalone", address = "127.0.0.1", port = {free_port()} }}
"""
    mtas = MTA.replace('issuer = "corp"', 'issuer = "acme"')
    config = write_config(tmp_path, smtpd, mtas, issuer=issuer, calendar=False)
    rt = runtime(config)
    (outcome,) = renew_many(rt, [])
    assert outcome.failed
    out = process(rt)
    assert [(o.kind, o.action) for o in out] == [("failure:0", "sent")]
    assert "RENEWAL FAILED" in subjects(smtpd)[0] and "127.0.0.1" in smtpd.messages[0].data.decode()

    renew_many(rt, [HOST])  # attempt 2: no new alert
    assert process(rt) == []
    renew_many(rt, [HOST])  # attempt 3: escalation
    out = process(rt)
    assert [(o.kind, o.action) for o in out] == [("failure:1", "sent")]
    assert "STILL FAILING (escalation 1)" in subjects(smtpd)[1]
    assert len(smtpd.messages) == 2
    rt.close()


def test_calendar_feed_and_metrics_commands(tmp_path: Path, smtpd: SmtpServer) -> None:
    ca = CORP
    config = write_config(tmp_path, smtpd, MTA + OTHER)
    rt = runtime(config)
    serial = import_manual(rt, tmp_path, ca, days=40)
    rt.close()
    cli = Cli(config)

    feed = tmp_path / "out" / "certmgr.ics"
    feed.parent.mkdir()
    cli("calendar", "-o", str(feed))
    cal = icalendar.Calendar.from_ical(feed.read_bytes())
    assert str(cal["METHOD"]) == "PUBLISH"
    summaries = sorted(str(e["SUMMARY"]) for e in cal.walk("VEVENT"))
    assert summaries == [f"Renew the TLS certificate of {HOST} (rsa)", f"TLS certificate of {HOST} (rsa) EXPIRES"]
    assert cli("calendar").stdout.startswith("BEGIN:VCALENDAR")  # stdout without -o
    assert serial.lower() in feed.read_text().lower()

    prom = tmp_path / "out" / "certmgr.prom"
    cli("metrics", "-o", str(prom))
    text = prom.read_text()
    assert 'certmgr_certificate_days_left{hostname="mx1.example.com",key_type="rsa"} 39' in text
    assert 'certmgr_deployment_state{hostname="mx9.example.com",key_type="rsa",state="planned"} 1.0' in text
    assert cli("metrics").stdout.startswith("# HELP")
