"""A notifier message can carry images its HTML shows by ``cid:``: the email notifier sends
them as the related parts of the HTML, the outbox keeps them, old messages build as before."""

from __future__ import annotations

from email.message import EmailMessage

from certmgr.interfaces import Attachment, Message
from certmgr.notify.outbox import dump_message, load_message
from providers.notifiers.email import build_email

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16
IMAGE = Attachment("chart.png", "image/png", PNG, content_id="chart.1@certmgr.invalid")
SHEET = Attachment("data.json", "application/json", b"{}")


def _parts(mail: EmailMessage) -> list[str]:
    return [p.get_content_type() for p in mail.walk()]


def test_inline_image_is_a_related_part_of_the_html() -> None:
    msg = Message("s", "words", html='<img src="cid:chart.1@certmgr.invalid">', attachments=(IMAGE, SHEET))
    mail = build_email(msg, "a@example.com", ("b@example.com",))
    assert _parts(mail) == ["multipart/mixed", "multipart/alternative", "text/plain", "multipart/related",
                            "text/html", "image/png", "application/json"]
    image = next(p for p in mail.walk() if p.get_content_type() == "image/png")
    assert image["Content-ID"] == "<chart.1@certmgr.invalid>" and image.get_content_disposition() == "inline"
    assert image.get_payload(decode=True) == PNG


def test_without_html_or_content_id_as_before() -> None:
    plain_only = build_email(Message("s", "words", attachments=(IMAGE,)), "a@example.com", ("b@example.com",))
    assert _parts(plain_only) == ["multipart/mixed", "text/plain", "image/png"]  # nothing to show it inline
    old = build_email(Message("s", "w", html="<p>w</p>", attachments=(SHEET,)), "a@example.com", ("b@example.com",))
    assert _parts(old) == ["multipart/mixed", "multipart/alternative", "text/plain", "text/html", "application/json"]


def test_outbox_keeps_the_content_id() -> None:
    msg = Message("s", "words", html="<p/>", attachments=(IMAGE, SHEET))
    assert load_message(dump_message(msg)) == msg
    old = dump_message(Message("s", "w", attachments=(SHEET,))).replace(', "content_id": null', "")
    assert load_message(old).attachments == (SHEET,)  # queued before content_id existed
