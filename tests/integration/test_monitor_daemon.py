"""`certmgr run` collects the mail logs of ``[monitor]`` on its own schedule: real mail
through a real Postfix is counted by the daemon, once, without `certmgr collect`, and the
periodic report goes out once through the configured notifier, as a mail with the numbers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from certmgr.store import Store
from certmgr.store.monitor import MonitorStore
from tests.peers.mailflow import MailFlow
from tests.peers.smtpd import SmtpServer, plain_body
from tests.peers.testca import TestCA
from tests.peers.util import free_port
from tests.tlsrpt_reports import as_gzip, report

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailFlow]:
    f = MailFlow(tmp_path_factory.mktemp("monitor-daemon")).start()
    yield f
    f.stop()


def counted(db: Path) -> tuple[int, int]:
    """(inbound, outbound) sessions in the store."""
    store = Store(f"sqlite:///{db}", read_only=True)
    try:
        now = datetime.now(UTC)
        rows = list(MonitorStore(store).sessions(now - timedelta(days=1), now))
    finally:
        store.close()
    return (sum(r.sessions for r in rows if r.key.direction == "inbound"),
            sum(r.sessions for r in rows if r.key.direction == "outbound"))


def test_daemon_collects_the_sessions_sent_once_and_mails_the_report(flow: MailFlow, tmp_path: Path) -> None:
    smtpd = SmtpServer(tmp_path)
    smtpd.start()
    ca = TestCA("tlsrpt")
    leaf = ca.leaf("localhost")
    (tmp_path / "tlsrpt.pem").write_bytes(leaf.cert_pem + leaf.chain_pem)
    (tmp_path / "tlsrpt.key").write_bytes(leaf.key_pem)
    port = free_port()
    config = tmp_path / "certmgr.toml"
    config.write_text(f"""
[certmgr]
state_dir = "{tmp_path / 'state'}"
trust = "{smtpd.ca_file}"

[notify.mailops]
type = "email"
smtp = "localhost:{smtpd.port}"
from = "certmgr@example.com"
to = ["mailops@example.com"]
timeout = 5

[daemon]
collect_interval = 1
renew_interval = 3600
remind_interval = 3600
probe_interval = 0
ari_interval = 0
metrics_listen = ""

[monitor]
logs = [{{ type = "postfix", path = "{flow.mx.log}" }}]
report = {{ notify = ["mailops"], every = "daily" }}
alerts = {{ min_sessions = 3 }}
tlsrpt = {{ listen = "127.0.0.1:{port}", cert = "{tmp_path / 'tlsrpt.pem'}", key = "{tmp_path / 'tlsrpt.key'}" }}
""")
    sent = [("verified.test", True), ("plain.test", False), ("trusted.test", True)]
    for domain, starttls in sent:  # before the daemon starts: its first collect reads them, then reports
        flow.send(domain, starttls=starttls)
    flow.wait_delivered(len(sent))
    log = tmp_path / "daemon.log"
    env = {k: v for k, v in os.environ.items() if k not in ("CERTMGR_CONFIG", "NOTIFY_SOCKET", "WATCHDOG_USEC")}
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "certmgr", "-v", "-c", str(config), "run"],
                                stdout=subprocess.DEVNULL, stderr=err, env=env)
    db = tmp_path / "state" / "certmgr.db"
    try:
        deadline = time.monotonic() + 60
        while not db.exists() or counted(db) != (len(sent), len(sent)):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"counted {counted(db) if db.exists() else None}\n{log.read_text()}"
            time.sleep(0.5)
        time.sleep(3)  # more runs of the job: nothing is counted twice
        assert counted(db) == (len(sent), len(sent))
        assert "collect: 0 sessions from 0 new lines" in log.read_text()

        # the daily report went out once (the next is due tomorrow), with the numbers sent,
        # and each alert once (a third of the sessions in plaintext, below the 90% threshold)
        subjects = sorted(str(m.message["Subject"]) for m in smtpd.messages)
        assert subjects == [
            "TLS alert: inbound TLS share 66.7% is below 90% (1 of 3 sessions in plaintext)",
            "TLS alert: outbound TLS share 66.7% is below 90% (1 of 3 sessions in plaintext)",
            "TLS report: inbound 66.7%, outbound 66.7% with TLS"], log.read_text()
        assert all(m.rcpt_tos == ["mailops@example.com"] for m in smtpd.messages)
        mail = next(m.message for m in smtpd.messages if str(m.message["Subject"]).startswith("TLS report"))
        text = plain_body(mail)
        assert "Inbound: 2 of 3 sessions used TLS" in text and "Outbound: 2 of 3 sessions used TLS" in text
        assert "still in plaintext: plain.test (1)" in text
        html = mail.get_body(("related",))
        assert html is not None
        assert html.get_content_type() == "multipart/related"
        page, chart = html.iter_parts()
        assert "2 of 3 sessions used TLS" in page.get_content() and chart.get_content_type() == "image/png"
        assert f'src="cid:{chart["Content-ID"].strip("<>")}"' in page.get_content()
        assert {p.get_filename() for p in mail.iter_attachments()} == {"tls-report.json"}

        # TLS reports POSTed to the daemon's HTTPS endpoint (RFC 8460 section 3) land in the store, once
        def post(body: bytes) -> requests.Response:
            return requests.post(f"https://localhost:{port}/", data=body, timeout=30,
                                 headers={"Content-Type": "application/tlsrpt+gzip"},
                                 verify=str(ca.write_root(tmp_path / "root.pem")))
        first = post(as_gzip(report("posted-1")))
        assert first.status_code == 201, first.text
        assert post(as_gzip(report("posted-1"))).status_code == 200
        bad = post(b"\x1f\x8b not gzip")
        assert bad.status_code == 400, bad.text
        store = Store(f"sqlite:///{db}", read_only=True)
        try:
            now = datetime.now(UTC)
            assert MonitorStore(store).tlsrpt(now - timedelta(days=3650), now + timedelta(days=3650)).reports == 1
        finally:
            store.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
        smtpd.stop()
