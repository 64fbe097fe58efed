"""Mail to an enforced partner that went without TLS, through a real Postfix: the daemon's
collect job mails an alert at once through the notifier, naming the domain, the peer, the
direction and the count, and only for the partner's sessions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from certmgr.config.load import load_config
from certmgr.runtime import Runtime
from certmgr.service.jobs import collect_job
from tests.peers.mailflow import MailFlow
from tests.peers.smtpd import SmtpServer, plain_body

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailFlow]:
    f = MailFlow(tmp_path_factory.mktemp("partner-alerts")).start()
    yield f
    f.stop()


def test_plaintext_to_an_enforced_partner_is_mailed_at_once(flow: MailFlow, tmp_path: Path) -> None:
    smtpd = SmtpServer(tmp_path)
    smtpd.start()
    config = tmp_path / "certmgr.toml"
    config.write_text(f"""
[certmgr]
state_dir = "{tmp_path / 'state'}"
trust = "{smtpd.ca_file}"

{smtpd.notify_toml("mailops", '"mailops@example.com"')}
[[partner]]
domain = "plain.test"
require = "encrypt"

[[partner]]
domain = "verified.test"

[monitor]
logs = [{{ type = "postfix", path = "{flow.mx.log}" }}]
report = {{ notify = ["mailops"], every = "off" }}
alerts = {{ min_sessions = 1000 }}
""")
    rt = Runtime(load_config(config))
    try:
        delivered = 0
        for domain, starttls in (("plain.test", False), ("verified.test", True), ("plain.test", True),
                                 ("untrusted.test", False)):
            flow.send(domain, starttls=starttls)
            delivered += 1
            flow.wait_delivered(delivered)  # one at a time: each delivery its own connection
        assert collect_job(rt, lambda: False).startswith("8 sessions, 0 TLS reports, 1 alerts sent")  # 4 in, 4 out
        [mail] = [m.message for m in smtpd.messages]
        subject = str(mail["Subject"])
        # plain.test's receiver has no STARTTLS: both deliveries went in plaintext, whatever swaks did
        assert subject == ("TLS alert: 2 outbound sessions to enforced partner plain.test without TLS: "
                           "127.0.0.1[127.0.0.1] (2)")
        assert "(plaintext-partner, outbound)" in plain_body(mail)
        # the same alert is not sent again the same day
        assert collect_job(rt, lambda: False).startswith("0 sessions")
        assert len(smtpd.messages) == 1
    finally:
        rt.close()
        smtpd.stop()
