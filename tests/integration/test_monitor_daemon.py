"""`certmgr run` collects the mail logs of ``[monitor]`` on its own schedule: real mail
through a real Postfix is counted by the daemon, once, without `certmgr collect`."""

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

from certmgr.store import Store
from certmgr.store.monitor import MonitorStore
from tests.peers.mailflow import MailFlow

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


def test_daemon_collects_the_sessions_sent_once(flow: MailFlow, tmp_path: Path) -> None:
    config = tmp_path / "certmgr.toml"
    config.write_text(f"""
[certmgr]
state_dir = "{tmp_path / 'state'}"

[daemon]
collect_interval = 1
renew_interval = 3600
remind_interval = 3600
probe_interval = 0
ari_interval = 0
metrics_listen = ""

[monitor]
logs = [{{ type = "postfix", path = "{flow.mx.log}" }}]
""")
    log = tmp_path / "daemon.log"
    env = {k: v for k, v in os.environ.items() if k not in ("CERTMGR_CONFIG", "NOTIFY_SOCKET", "WATCHDOG_USEC")}
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "certmgr", "-v", "-c", str(config), "run"],
                                stdout=subprocess.DEVNULL, stderr=err, env=env)
    db = tmp_path / "state" / "certmgr.db"
    try:
        sent = [("verified.test", True), ("plain.test", False), ("trusted.test", True)]
        for domain, starttls in sent:
            flow.send(domain, starttls=starttls)
        flow.wait_delivered(len(sent))
        deadline = time.monotonic() + 60
        while not db.exists() or counted(db) != (len(sent), len(sent)):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"counted {counted(db) if db.exists() else None}\n{log.read_text()}"
            time.sleep(0.5)
        time.sleep(3)  # more runs of the job: nothing is counted twice
        assert counted(db) == (len(sent), len(sent))
        assert "collect: 0 sessions from 0 new lines" in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
