"""The report mail, checked as mail: real sessions through a real Postfix are
collected, the report mail (as the email notifier builds it) goes through a second
Postfix into a maildir, and what arrives has both parts, the chart as a PNG the
HTML shows by ``cid:``, the trend in words, and the numbers of the sessions sent."""

from __future__ import annotations

import email
import email.policy
import io
import smtplib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from PIL import Image

from certmgr.monitor.collector import collect_log
from certmgr.monitor.report import build_report
from certmgr.notify.tls_report import report_message
from certmgr.store.monitor import MonitorStore
from providers.notifiers.email import build_email
from tests.peers.mailflow import MaildirMailbox, MailFlow

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MailFlow, MaildirMailbox]]:
    root = tmp_path_factory.mktemp("reportmail")
    flow = MailFlow(root / "flow").start()
    box = MaildirMailbox(root / "box", rcpt="mailops@reports.test").start()
    yield flow, box
    box.stop()
    flow.stop()


def test_report_mail_as_received(peers: tuple[MailFlow, MaildirMailbox], tmp_path: Path) -> None:
    flow, box = peers
    sent = [("verified.test", True), ("verified.test", True), ("trusted.test", False), ("plain.test", True)]
    for domain, starttls in sent:
        flow.send(domain, starttls=starttls)
    flow.wait_delivered(len(sent))
    store = MonitorStore.at(tmp_path / "db")
    collect_log(flow.mx.log, store)
    now = datetime.now(UTC)
    report = build_report(store, now - timedelta(days=7), now + timedelta(hours=1))
    msg = report_message(report, None, ["mx.watch.test: certificate 4c64ab renewed and deployed"])
    with smtplib.SMTP("127.0.0.1", box.peer.port, timeout=30) as smtp:
        smtp.send_message(build_email(msg, "certmgr@watch.test", (box.rcpt,)))
    box.wait_messages(1)

    (path,) = (box.maildir / "new").iterdir()
    got = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(got, EmailMessage) and got.get_content_type() == "multipart/mixed"
    body, report_json = got.iter_parts()
    assert body.get_content_type() == "multipart/alternative"
    assert report_json.get_content_type() == "application/json" and report_json.get_filename() == "tls-report.json"
    plain, related = body.iter_parts()
    assert plain.get_content_type() == "text/plain" and related.get_content_type() == "multipart/related"
    html_part, chart = related.iter_parts()
    assert html_part.get_content_type() == "text/html" and chart.get_content_type() == "image/png"
    assert chart.get_content_disposition() == "inline"
    cid = chart["Content-ID"].strip()
    assert cid.startswith("<") and cid.endswith(">")
    assert f'<img src="cid:{cid[1:-1]}"' in html_part.get_content()  # the image the HTML shows is this one
    png = chart.get_payload(decode=True)
    assert isinstance(png, bytes)
    image = Image.open(io.BytesIO(png))
    image.load()  # decodes every pixel
    assert image.format == "PNG" and image.size == (720, 320)
    assert len(image.getcolors(maxcolors=1 << 16) or range(1 << 16)) > 10  # drawn, not blank

    text = plain.get_content()
    tls_in = sum(1 for _, t in sent if t)
    assert f"Inbound: {tls_in} of {len(sent)} sessions used TLS ({100 * tls_in / len(sent):.1f}%)" in text
    assert "still in plaintext: localhost (1)" in text  # one swaks run without STARTTLS
    outbound_plain = report["outbound"]["domains"]["plain.test"]["plaintext"]
    assert outbound_plain >= 1 and f"plain.test ({outbound_plain})" in text
    # the peers themselves: the swaks client without STARTTLS, the receiver without STARTTLS
    assert report["inbound"]["plaintext_peers"] == [
        {"host": "localhost", "address": "127.0.0.1", "domain": "localhost", "sessions": 1}]
    assert report["outbound"]["plaintext_peers"] == [
        {"host": "127.0.0.1", "address": "127.0.0.1", "domain": "plain.test", "sessions": outbound_plain}]
    assert "peers still in plaintext: localhost[127.0.0.1] (1)" in text
    assert f"peers still in plaintext: 127.0.0.1[127.0.0.1] ({outbound_plain})" in text
    assert "certificate 4c64ab renewed and deployed" in text
    today = now.date().isoformat()  # a seven-day period: one point per day, the same as the chart
    assert f"TLS share per day (the chart): {today} {100 * tls_in / len(sent):.1f}%" in text
    assert "Alerts: none" in text  # 1 in 4 inbound plaintext, but too few sessions to judge a share
    assert got["Subject"].startswith(f"TLS report: inbound {100 * tls_in / len(sent):.1f}%")
