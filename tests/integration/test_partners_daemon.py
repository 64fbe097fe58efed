"""`certmgr run` re-checks the partners on its own schedule: a real partner Postfix that loses
STARTTLS is alerted at once, through the partner's notifier, to a real SMTP server, with the
exact problem and the two choices (a partner whose policy was refused, so whose mail is not
deferred, gets none); the alert is not repeated while the partner stays broken,
not even by a restarted daemon; the all-clear goes out when it is good again.  Its metrics
come from the stored checks (the daemon's /metrics and `certmgr metrics`), never from a probe."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from certmgr.store import Store, queue
from tests.peers.partners import PartnerWorld, partner_world
from tests.peers.postfix import PostfixPeer, postconf
from tests.peers.smtpd import SmtpServer, plain_body
from tests.peers.util import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PartnerWorld]:
    with partner_world(tmp_path_factory.mktemp("partners-daemon"), defects=("good", "nostarttls")) as w:
        yield w


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("CERTMGR_CONFIG", "NOTIFY_SOCKET", "WATCHDOG_USEC")}


class Daemon:
    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log = config, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "certmgr", "-v", "-c", str(self.config), "run"],
                                         stdout=subprocess.DEVNULL, stderr=err, env=_env())

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=60) == 0, self.log.read_text()

    def wait(self, predicate: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, f"{what}\n{self.log.read_text()}"
            time.sleep(0.3)


def _runs(db: Path) -> int:
    """How many partner checks ended (the job's last run, as a count of log lines is not kept)."""
    if not db.exists():
        return 0
    store = Store(f"sqlite:///{db}", read_only=True)
    try:
        state = queue.job_states(store).get("partners")
        return 0 if state is None or state.last_success is None else int(state.last_success.timestamp() * 1000)
    finally:
        store.close()


def test_daemon_alerts_once_across_a_restart_and_sends_the_all_clear(world: PartnerWorld, tmp_path: Path) -> None:
    smtpd = SmtpServer(tmp_path)
    smtpd.start()
    out = PostfixPeer(tmp_path / "out", hostname="out.sender.test", starttls=False)
    out.start()
    try:
        trust = tmp_path / "trust.pem"  # the partner CA and the SMTP sink's CA
        trust.write_bytes(world.trust_file.read_bytes() + smtpd.ca_file.read_bytes())
        cert_dir = tmp_path / "certmgr-out"
        cert_dir.mkdir()
        port = free_port()
        domain, mta = world.domain("good"), world.mtas["good"]
        refused = world.domain("multi")  # its second MX has no STARTTLS: never enforced, never "deferred"
        config = tmp_path / "certmgr.toml"
        config.write_text(f"""
[certmgr]
state_dir = "{tmp_path / 'state'}"
trust = "{trust}"
resolver = "{world.named.server}"

[daemon]
partner_interval = 1
renew_interval = 3600
remind_interval = 3600
probe_interval = 0
ari_interval = 0
metrics_listen = "127.0.0.1:{port}"

[deploy.out]
type = "postfix"
config_dir = "{out.config_dir}"
cert_dir = "{cert_dir}"
manage_config = true

[notify.mailops]
type = "email"
smtp = "localhost:{smtpd.port}"
from = "certmgr@sender.test"
to = ["mailops@sender.test"]
timeout = 5

[notify.nobody]
type = "email"
smtp = "localhost:{smtpd.port}"
from = "certmgr@sender.test"
to = ["nobody@sender.test"]
timeout = 5

[[partner]]
domain = "{domain}"
require = "verify"
deploy = ["out"]
notify = ["mailops"]

[[partner]]
domain = "{refused}"
deploy = ["out"]
notify = ["nobody"]
""")
        deploy = subprocess.run([sys.executable, "-m", "certmgr", "-c", str(config), "deploy", "--json"],
                                capture_output=True, text=True, env=_env(), timeout=120)
        assert deploy.returncode == 1, deploy.stdout + deploy.stderr  # multi refused
        assert json.loads(deploy.stdout)[0]["enforced"] == [domain]

        db = tmp_path / "state" / "certmgr.db"
        daemon = Daemon(config, tmp_path / "daemon.log")
        daemon.start()
        try:
            def metrics() -> str:
                return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text

            daemon.wait(lambda: _runs(db) > 0, "the first partner check")
            text = metrics()
            assert f'certmgr_partner_meets_level{{domain="{domain}",require="verify"}} 1.0' in text
            assert f'certmgr_partner_enforced{{domain="{domain}"}} 1.0' in text
            assert f'certmgr_partner_enforced{{domain="{refused}"}} 0.0' in text
            assert f'certmgr_partner_meets_level{{domain="{refused}",require="verify"}} 0.0' in text
            assert smtpd.messages == []  # the refused partner fails, but mail to it is not deferred

            postconf(mta, "smtpd_tls_security_level = none")
            mta.reload()
            daemon.wait(lambda: len(smtpd.messages) == 1, "the degradation alert")
            [alert] = smtpd.messages
            assert alert.rcpt_tos == ["mailops@sender.test"]  # the partner's notifier, not every one
            assert str(alert.message["Subject"]) == (f"[certmgr] mail to {domain} is deferred: its MX no longer "
                                                     "meets 'verify'")
            body = plain_body(alert.message)
            assert (f"- {world.mx('good')} ({mta.address}) does not offer STARTTLS: mail to {domain} will be "
                    "deferred under 'verify'") in body
            assert "1. Wait for the partner to fix it" in body and "2. Lower the level" in body
            assert f'certmgr_partner_alert_open{{domain="{domain}"}} 1.0' in metrics()

            # still broken: more checks, no second mail
            seen = _runs(db)
            daemon.wait(lambda: _runs(db) > seen, "another check")
            seen = _runs(db)
            daemon.wait(lambda: _runs(db) > seen, "one more check")
            daemon.stop()
            daemon.start()  # a restart keeps the open alert: not sent twice
            seen = _runs(db)
            daemon.wait(lambda: _runs(db) > seen, "a check after the restart")
            seen = _runs(db)
            daemon.wait(lambda: _runs(db) > seen, "a second check after the restart")
            assert len(smtpd.messages) == 1, [str(m.message["Subject"]) for m in smtpd.messages]

            postconf(mta, "smtpd_tls_security_level = may")
            mta.reload()
            daemon.wait(lambda: len(smtpd.messages) == 2, "the all-clear")
            assert str(smtpd.messages[1].message["Subject"]) == (
                f"[certmgr] mail to {domain} flows again: its MX meets 'verify' again")
            assert smtpd.messages[1].rcpt_tos == ["mailops@sender.test"]
            daemon.wait(lambda: f'certmgr_partner_alert_open{{domain="{domain}"}} 0.0' in metrics(),
                        "the alert closed in the metrics")
        finally:
            daemon.stop()

        # `certmgr metrics` reads the stored checks: a partner broken since is not probed
        postconf(mta, "smtpd_tls_security_level = none")
        mta.reload()
        m = subprocess.run([sys.executable, "-m", "certmgr", "-c", str(config), "metrics"],
                           capture_output=True, text=True, env=_env(), timeout=60)
        assert m.returncode == 0, m.stderr
        assert f'certmgr_partner_meets_level{{domain="{domain}",require="verify"}} 1.0' in m.stdout
        assert len(smtpd.messages) == 2
    finally:
        out.stop()
        smtpd.stop()
