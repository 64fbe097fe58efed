"""The e-mail notifier against a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import icalendar
import pytest

from certmgr.errors import ConfigError, NotifyError
from certmgr.interfaces import Attachment, Message, Options, ProviderEnv
from certmgr.notify.calendar import renewal_event_ics
from certmgr.notify.cert_status import CertStatus
from certmgr.notify.renewal_messages import reminder_message
from providers.notifiers.email import EmailNotifier
from tests.peers.smtpd import SmtpServer

pytestmark = pytest.mark.integration

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
USER, PASSWORD = "certmgr", "s3cret-Pässword"


def facts() -> CertStatus:
    return CertStatus(
        hostname="mx1.example.com", names=("mx1.example.com", "mail.example.com"), key_type="rsa-2048",
        issuer="letsencrypt", serial="04ab", not_after=NOW + timedelta(days=14), days_left=14,
        state="failed", last_error="order failed: <urn:acme:error:dns>", attempts=2, automatic=True,
        next_retry=NOW + timedelta(hours=1), config_path="/etc/certmgr/certmgr.toml",
    )


def notifier(tmp_path: Path, server: SmtpServer, *, trust: Path | None = None, **table: Any) -> EmailNotifier:
    pw = tmp_path / "smtp-password"
    pw.write_text(PASSWORD + "\n")
    base: dict[str, Any] = {"smtp": f"localhost:{server.port}", "from": "certmgr@example.com",
                            "to": ["ops@example.com", "oncall@example.com"], "timeout": 5}
    if server.username:
        base.update(username=USER, password_file=str(pw))
    base.update(table)
    opts = Options(base, where="notify.ops", base_dir=tmp_path)
    env = ProviderEnv(config_dir=tmp_path, state_dir=tmp_path, trust_file=trust)
    return EmailNotifier.from_config("ops", opts, env)


@pytest.fixture
def smtpd(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path, username=USER, password=PASSWORD)
    server.start()
    yield server
    server.stop()


def invitation() -> Attachment:
    ics = renewal_event_ics(facts(), sequence=3, organizer="certmgr@example.com",
                            attendees=["ops@example.com"], now=NOW)
    return Attachment("renew-mx1.example.com.ics", "text/calendar; method=REQUEST", ics)


def test_delivers_over_verified_starttls_with_auth_and_invitation(tmp_path: Path, smtpd: SmtpServer) -> None:
    msg = reminder_message(facts(), 14, NOW)
    msg = Message(**{**msg.__dict__, "attachments": (invitation(),)})
    notifier(tmp_path, smtpd, trust=smtpd.ca_file).send(msg)

    assert len(smtpd.messages) == 1
    got = smtpd.messages[0]
    assert got.tls and got.authenticated_as == USER
    assert got.rcpt_tos == ["ops@example.com", "oncall@example.com"]
    assert got.message["Subject"] == msg.subject
    assert got.message["Auto-Submitted"] == "auto-generated"
    text = got.message.get_body(("plain",))
    html = got.message.get_body(("html",))
    assert text is not None and "renew mx1.example.com --force" in text.get_content()
    assert html is not None and "&lt;urn:acme:error:dns&gt;" in html.get_content()

    parts = {p.get_content_type(): p for p in got.message.walk()}
    inline = parts["text/calendar"]
    assert inline.get_param("method") == "REQUEST"
    attached = parts["application/ics"]
    assert attached.get_filename() == "renew-mx1.example.com.ics"
    for part in (inline, attached):
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        cal = icalendar.Calendar.from_ical(payload)
        assert cal["METHOD"] == "REQUEST"
        (event,) = cal.walk("VEVENT")
        assert event["SEQUENCE"] == 3
        assert event.decoded("DTSTART") == NOW + timedelta(days=7)


def test_implicit_tls(tmp_path: Path) -> None:
    with SmtpServer(tmp_path, implicit_tls=True, username=USER, password=PASSWORD) as server:
        notifier(tmp_path, server, trust=server.ca_file, tls="implicit").send(Message("465", "t"))
        assert [(m.tls, m.authenticated_as) for m in server.messages] == [(True, USER)]
        # a STARTTLS client talking to an implicit-TLS port fails with a hint about ports
        with pytest.raises(NotifyError, match=r"localhost:\d+: cannot deliver"):
            notifier(tmp_path, server, trust=server.ca_file, timeout=1).send(Message("x", "t"))


def test_wrong_password_is_a_notify_error(tmp_path: Path, smtpd: SmtpServer) -> None:
    smtpd.password = "another"
    with pytest.raises(NotifyError, match=r"refused the login of 'certmgr'.*password"):
        notifier(tmp_path, smtpd, trust=smtpd.ca_file).send(Message("s", "t"))
    assert smtpd.failed_logins == 1 and not smtpd.messages


def test_untrusted_server_certificate_is_refused(tmp_path: Path, smtpd: SmtpServer) -> None:
    with pytest.raises(NotifyError, match=r"TLS certificate is not trusted.*\[certmgr\] trust"):
        notifier(tmp_path, smtpd, trust=None).send(Message("s", "t"))
    assert not smtpd.messages


def test_refuses_clear_text_when_starttls_is_not_offered(tmp_path: Path) -> None:
    with SmtpServer(tmp_path, starttls=False) as server:
        with pytest.raises(NotifyError, match=r"localhost:\d+ does not offer STARTTLS.*tls = \"none\""):
            notifier(tmp_path, server, trust=server.ca_file).send(Message("s", "t"))
        assert not server.messages


def test_clear_text_only_when_configured_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with SmtpServer(tmp_path, starttls=False) as server, caplog.at_level(logging.WARNING):
        notifier(tmp_path, server, tls="none").send(Message("plain", "text"))
        assert len(server.messages) == 1 and not server.messages[0].tls
    assert "clear text" in caplog.text


def test_server_down_is_retryable_and_works_after_restart(tmp_path: Path, smtpd: SmtpServer) -> None:
    n = notifier(tmp_path, smtpd, trust=smtpd.ca_file)
    smtpd.stop()
    with pytest.raises(NotifyError, match=rf"localhost:{smtpd.port}.*server is up") as err:
        n.send(Message("s", "t"))
    assert err.value.__cause__ is not None
    smtpd.start()
    n.send(Message("again", "t"))
    assert [m.message["Subject"] for m in smtpd.messages] == ["again"]


def test_temporary_rejection_is_a_notify_error(tmp_path: Path, smtpd: SmtpServer) -> None:
    smtpd.data_reply = "451 4.3.0 try again later"
    with pytest.raises(NotifyError, match=r"temporarily refused the message \(451"):
        notifier(tmp_path, smtpd, trust=smtpd.ca_file).send(Message("s", "t"))


# ---- configuration (no server needed) -----------------------------------


def _config(tmp_path: Path, **table: Any) -> EmailNotifier:
    base = {"smtp": "smtp.example.com", "from": "certmgr@example.com", "to": ["ops@example.com"], **table}
    opts = Options(base, where="notify.ops", base_dir=tmp_path)
    return EmailNotifier.from_config("ops", opts, ProviderEnv(config_dir=tmp_path, state_dir=tmp_path))


def test_config_defaults(tmp_path: Path) -> None:
    c = _config(tmp_path).config
    assert (c.port, c.tls, c.tls_verify) == (587, "starttls", True)
    assert _config(tmp_path, smtp="smtp.example.com:465").config.tls == "implicit"


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"password": "inline"}, "password"),
        ({"starttls": False}, "starttls"),
        ({"username": "u"}, "password_file"),
        ({"to": ["not-an-address"]}, "to"),
        ({"smtp": "host:99999"}, "smtp"),
        ({"reminders": [30, 7]}, "reminders"),  # a core key: the core removes it before us
        ({"tls": "maybe"}, "tls"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, table: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        _config(tmp_path, **table)
    assert err.value.key == key and err.value.table == "notify.ops"


def test_tls_verify_false_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        _config(tmp_path, tls_verify=False)
    assert "tls_verify = false" in caplog.text


@pytest.mark.parametrize("subject", [
    "[certmgr] mx1.example.com: certificate renewed, valid until 2031-11-28",  # 79 with "Subject: "
    "[certmgr] CRITICAL: mail-relay-01.eu-west.example.com, certificate expires in 3 days",
])
def test_subject_is_never_folded_onto_a_continuation_line(subject: str) -> None:
    from email import message_from_bytes, policy

    from providers.notifiers.email import build_email

    raw = build_email(Message(subject=subject, text="body\n"), "certmgr@example.com", ("ops@example.com",)).as_bytes()
    assert raw.startswith(f"Subject: {subject}\n".encode()), raw[:200]
    assert message_from_bytes(raw, policy=policy.default)["Subject"] == subject
