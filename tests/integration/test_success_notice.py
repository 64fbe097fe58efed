"""``on_success``: after a real renewal from pebble, one short notice by real SMTP (aiosmtpd,
STARTTLS) per MTA, covering both of a dual RSA+ECDSA MTA's certificates and carrying the one
calendar invitation, moved to the new expiry (no separate calendar mail then); words that say
where the certificate went; nothing again until the next renewal."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import icalendar
import pytest

from certmgr.config.load import load_config
from certmgr.lifecycle.renew import renew_many
from certmgr.notify.reminders import process
from certmgr.runtime import Runtime
from tests.peers.pebble import Pebble, running_pebble
from tests.peers.smtpd import Received, SmtpServer

pytestmark = pytest.mark.integration

HOST = "mx1.example.com"


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    with running_pebble(tmp_path_factory.mktemp("pebble")) as p:
        yield p


def write_config(tmp_path: Path, pebble: Pebble, smtpd: SmtpServer, *, on_success: bool,
                 key: str = '"rsa-2048"', deploy: str = "") -> Path:
    path = tmp_path / "certmgr.toml"
    path.write_text(f"""
[certmgr]
state_dir = "{tmp_path / 'state'}"
trust = "{smtpd.ca_file}"

{pebble.issuer_toml()}
{smtpd.notify_toml()}
calendar = true
on_success = {str(on_success).lower()}

[[mta]]
hostname = "{HOST}"
key = {key}
issuer = "pebble"
notify = ["ops"]
{deploy}""")
    return path


def by_subject(smtpd: SmtpServer, start: str) -> list[Received]:
    return [m for m in smtpd.messages if str(m.message["Subject"]).startswith(start)]


def invited_event(mail: Received) -> Any:
    """The VEVENT of the invitation attached to ``mail``."""
    return next(iter(invitation(mail).walk("VEVENT")))


def calendar_parts(smtpd: SmtpServer) -> list[bytes]:
    """Every invitation (text/calendar part) received, in any mail."""
    out = []
    for mail in smtpd.messages:
        for part in mail.message.walk():
            if part.get_content_type() == "text/calendar":
                payload = part.get_payload(decode=True)
                assert isinstance(payload, bytes)
                out.append(payload)
    return out


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
        assert [(o.kind, o.action) for o in process(rt)] == [("success", "sent")]
        (mail,) = smtpd.messages  # the invitation rides with the notice: no calendar mail besides
        assert str(mail.message["Subject"]).startswith(f"[certmgr] {HOST}: certificate issued, valid until")
        event = invited_event(mail)
        assert int(event["SEQUENCE"]) == 0
        assert len(calendar_parts(smtpd)) == 1

        assert process(rt) == [] and len(smtpd.messages) == 1, "nothing twice"
        (again,) = renew_many(rt, [])
        assert again.action == "not-due" and process(rt) == []

        (forced,) = renew_many(rt, [], force=True)
        assert forced.action == "issued"
        assert [(o.kind, o.action) for o in process(rt)] == [("success", "sent")]
        (second,) = by_subject(smtpd, f"[certmgr] {HOST}: certificate renewed, valid until")
        body = second.message.get_body(("plain",))
        assert body is not None and "would have expired" in body.get_content(), "it names the one it replaced"
        moved = invited_event(second)
        assert str(moved["UID"]) == str(event["UID"]) and int(moved["SEQUENCE"]) == 1
        new = rt.store.version(forced.version_id)
        assert new is not None and moved["DTSTART"].dt >= event["DTSTART"].dt
        assert moved["DTSTART"].dt.strftime("%F %T") == (new.not_after - timedelta(days=7)).strftime("%F %T")
        assert len(smtpd.messages) == 2 and len(calendar_parts(smtpd)) == 2
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


def test_dual_mta_one_message_per_event_and_one_invitation(
        tmp_path: Path, pebble: Pebble, smtpd: SmtpServer) -> None:
    """RSA and ECDSA renewed together: one mail for the MTA (both serials), one invitation
    (dated by the earlier expiry), words that say it was not deployed (no deploy target)."""
    config = write_config(tmp_path, pebble, smtpd, on_success=True, key='["rsa-2048", "ecdsa-p256"]')
    rt = Runtime(load_config(config))
    try:
        for round_ in (0, 1):
            outcomes = renew_many(rt, [], force=round_ > 0)
            assert sorted(o.action for o in outcomes) == ["issued", "issued"], outcomes
            versions = [rt.store.version(o.version_id) for o in outcomes]
            serials = [v.serial for v in versions if v is not None]
            assert [(o.kind, o.action) for o in process(rt)] == [("success", "sent")]
            mail = smtpd.messages[-1]
            assert len(smtpd.messages) == round_ + 1, [str(m.message["Subject"]) for m in smtpd.messages]
            subject = str(mail.message["Subject"])
            how = "renewed" if round_ else "issued"
            assert subject.startswith(f"[certmgr] {HOST}: certificates (") and f") {how}, valid until" in subject
            assert subject.endswith("- not deployed (no deploy target)"), subject
            body = mail.message.get_body(("plain",))
            assert body is not None
            text = body.get_content()
            for serial in serials:
                assert serial in text, serial
            assert "no deploy target configured" in text and "Install them yourself" in text
            assert "renewed and deployed" not in text and "Deployed to" not in text
            assert len(calendar_parts(smtpd)) == round_ + 1, "one invitation per renewal, in one mail"
            event = invited_event(mail)
            assert int(event["SEQUENCE"]) == round_
            earliest = min(v.not_after for v in versions if v is not None)
            assert event["DTSTART"].dt.strftime("%F %T") == (earliest - timedelta(days=7)).strftime("%F %T")
            if round_ == 0:
                uid = str(event["UID"])
            assert str(event["UID"]) == uid, "one event per MTA, its UID stable"
        assert process(rt) == [] and len(smtpd.messages) == 2, "nothing twice"
    finally:
        rt.close()
    rt = Runtime(load_config(config))  # a new process: still nothing twice
    try:
        assert process(rt) == [] and len(smtpd.messages) == 2
    finally:
        rt.close()


def test_success_notice_says_a_rolled_back_deployment_is_not_in_service(
        tmp_path: Path, pebble: Pebble, smtpd: SmtpServer) -> None:
    """The deploy hook fails: the files are put back, and the notice says the certificate is
    NOT in service (not "renewed and deployed"); the deployment alert follows."""
    hook = f"""deploy = ["hook"]
dane = false

[deploy.hook]
type = "exec"
command = ["false"]
cert_dir = "{tmp_path / 'certs'}"
verify = false
"""
    rt = Runtime(load_config(write_config(tmp_path, pebble, smtpd, on_success=True, deploy=hook)))
    try:
        outcomes = renew_many(rt, [])
        assert [o.action for o in outcomes] == ["issued", "rolled-back"], outcomes
        assert sorted((o.kind, o.action) for o in process(rt)) == [("deploy:0", "sent"), ("success", "sent")]
        (notice,) = by_subject(smtpd, f"[certmgr] {HOST}: certificate issued")
        assert str(notice.message["Subject"]).endswith("- NOT deployed (deployment failed)")
        body = notice.message.get_body(("plain",))
        assert body is not None
        text = body.get_content()
        assert "NOT in service" in text and "Deployment to hook was rolled back" in text
        assert "Deployed to" not in text and "and deployed" not in text
        assert len(calendar_parts(smtpd)) == 1
    finally:
        rt.close()


def test_two_processes_at_once_send_the_dual_notice_once(tmp_path: Path, pebble: Pebble, smtpd: SmtpServer) -> None:
    """Two certmgr processes (a daemon and `certmgr remind`) queue and send at the same moment:
    the one message of the MTA's renewal, and its one invitation, go out once."""
    config = write_config(tmp_path, pebble, smtpd, on_success=True, key='["rsa-2048", "ecdsa-p256"]')
    # each its own lease owner, as two processes are
    first, second = Runtime(load_config(config), node="node-a"), Runtime(load_config(config), node="node-b")
    try:
        assert sorted(o.action for o in renew_many(first, [])) == ["issued", "issued"]
        start = threading.Barrier(2)
        results: list[list[str]] = []

        def remind(rt: Runtime) -> None:
            start.wait()
            results.append([o.kind for o in process(rt) if o.action == "sent"])

        threads = [threading.Thread(target=remind, args=(rt,)) for rt in (first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(k for r in results for k in r) == ["success"], results
        assert len(smtpd.messages) == 1 and len(calendar_parts(smtpd)) == 1
    finally:
        first.close()
        second.close()
