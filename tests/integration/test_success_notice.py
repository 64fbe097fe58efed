"""``on_success``: after a real renewal from pebble, one short notice by real SMTP (aiosmtpd,
STARTTLS), carrying the calendar invitation moved to the new expiry (which also goes out as its
own calendar message, as every calendar change does); nothing again until the next renewal."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import icalendar
import pytest

from certmgr.config import load_config
from certmgr.reminders import process
from certmgr.renewal import renew_many
from certmgr.runtime import Runtime
from tests.peers.pebble import Pebble, running_pebble
from tests.peers.smtpd import Received, SmtpServer

pytestmark = pytest.mark.integration

HOST = "mx1.example.com"


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    with running_pebble(tmp_path_factory.mktemp("pebble")) as p:
        yield p


@pytest.fixture
def smtpd(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path)
    server.start()
    yield server
    server.stop()


def write_config(tmp_path: Path, pebble: Pebble, smtpd: SmtpServer, *, on_success: bool) -> Path:
    path = tmp_path / "certmgr.toml"
    path.write_text(f"""
[certmgr]
state_dir = "{tmp_path / 'state'}"
trust = "{smtpd.ca_file}"

{pebble.issuer_toml()}
[notify.ops]
type = "email"
smtp = "localhost:{smtpd.port}"
from = "certmgr@example.com"
to = ["ops@example.com"]
timeout = 5
calendar = true
on_success = {str(on_success).lower()}

[[mta]]
hostname = "{HOST}"
issuer = "pebble"
notify = ["ops"]
""")
    return path


def by_subject(smtpd: SmtpServer, start: str) -> list[Received]:
    return [m for m in smtpd.messages if str(m.message["Subject"]).startswith(start)]


def invited_event(mail: Received) -> Any:
    """The VEVENT of the invitation attached to ``mail``."""
    return next(iter(invitation(mail).walk("VEVENT")))


def invitation(mail: Received) -> icalendar.Calendar:
    msg = mail.message
    for part in msg.walk():
        if part.get_content_type() == "text/calendar":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return icalendar.Calendar.from_ical(payload)
    raise AssertionError(f"no invitation in {msg['Subject']}")


def test_success_notice_once_per_renewal_with_the_invitation_moved(
        tmp_path: Path, pebble: Pebble, smtpd: SmtpServer) -> None:
    rt = Runtime(load_config(write_config(tmp_path, pebble, smtpd, on_success=True)))
    try:
        (first,) = renew_many(rt, [])
        assert first.action == "issued", first
        assert sorted((o.kind, o.action) for o in process(rt)) == [("calendar:REQUEST", "sent"), ("success", "sent")]
        renewed = f"[certmgr] {HOST}: certificate renewed, valid until"
        (mail,) = by_subject(smtpd, renewed)
        event = invited_event(mail)
        assert int(event["SEQUENCE"]) == 0

        assert process(rt) == [] and len(smtpd.messages) == 2, "nothing twice"
        (again,) = renew_many(rt, [])
        assert again.action == "not-due" and process(rt) == []

        (forced,) = renew_many(rt, [], force=True)
        assert forced.action == "issued"
        assert sorted((o.kind, o.action) for o in process(rt)) == [("calendar:REQUEST", "sent"), ("success", "sent")]
        second = by_subject(smtpd, renewed)[1]
        body = second.message.get_body(("plain",))
        assert body is not None and "would have expired" in body.get_content(), "it names the one it replaced"
        moved = invited_event(second)
        assert str(moved["UID"]) == str(event["UID"]) and int(moved["SEQUENCE"]) == 1
        new = rt.store.version(forced.version_id)
        assert new is not None and moved["DTSTART"].dt >= event["DTSTART"].dt
        assert moved["DTSTART"].dt.strftime("%F %T") == (new.not_after - timedelta(days=7)).strftime("%F %T")
        assert len(smtpd.messages) == 4
    finally:
        rt.close()


def test_no_notice_without_on_success(tmp_path: Path, pebble: Pebble, smtpd: SmtpServer) -> None:
    rt = Runtime(load_config(write_config(tmp_path, pebble, smtpd, on_success=False)))
    try:
        (first,) = renew_many(rt, [])
        assert first.action == "issued"
        kinds = [o.kind for o in process(rt)]
        assert "success" not in kinds, kinds
        assert all("renewed" not in str(m.message["Subject"]) for m in smtpd.messages)
    finally:
        rt.close()
