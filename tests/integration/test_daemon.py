"""`certmgr run` as a real process against a real pebble: renews by itself, talks to
systemd's notify socket, refuses a second instance, reloads on SIGHUP, stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from certmgr.config.load import load_config
from certmgr.store import Store, queue
from tests.e2e.conftest import Cli, acme_config
from tests.peers.pebble import Pebble, running_pebble
from tests.peers.smtpd import SmtpServer, plain_body
from tests.peers.util import free_port

pytestmark = pytest.mark.integration

MTA = """
[[mta]]
hostname = "mx1.example.com"
issuer = "pebble"
renew_before = 1   # longer than the certificate lives: due once a tenth of its life has passed
"""
MTA2 = """
[[mta]]
hostname = "mx2.example.com"
key = "ecdsa-p256"
issuer = "pebble"
"""


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    # certificates that live a minute: the daemon renews them by itself within seconds
    with running_pebble(tmp_path_factory.mktemp("pebble"), validity_seconds=60) as p:
        yield p


class NotifySocket:
    """What systemd listens on: an AF_UNIX datagram socket; keeps every message received."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        seen = len(self.messages)
        while time.monotonic() < deadline:
            for m in self.messages[seen:]:
                if predicate(m):
                    return m
            seen = len(self.messages)
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                pass
        raise AssertionError(f"no matching notify message within {timeout}s; got {self.messages}")

    def close(self) -> None:
        self.sock.close()


def wait_until(check: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {timeout}s; daemon log:\n{log.read_text()}")
        time.sleep(0.2)


def serials(state: Path, host: str, alg: str = "rsa") -> set[str]:
    return {p.name for p in (state / "certs" / host / alg).glob("*") if (p / "cert.pem").exists()}


def test_daemon_lifecycle(tmp_path: Path, pebble: Pebble) -> None:
    metrics_port = free_port()
    daemon_table = f"""
[daemon]
renew_interval = 2
remind_interval = 60
probe_interval = 3600
ari_interval = 3600
metrics_listen = "127.0.0.1:{metrics_port}"
"""
    config = acme_config(tmp_path, pebble, MTA, extra=daemon_table)
    state = tmp_path / "state"
    notify = NotifySocket(tmp_path / "notify.sock")
    log = tmp_path / "daemon.log"
    env = {k: v for k, v in os.environ.items() if k not in ("CERTMGR_CONFIG", "WATCHDOG_PID")}
    env.update(NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC="2000000")
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "certmgr", "-c", str(config), "run"],
                                stdout=subprocess.DEVNULL, stderr=err, env=env)
    try:
        ready = notify.wait_for(lambda m: "READY=1" in m, 30)
        assert "STATUS=running, 1 MTAs" in ready
        notify.wait_for(lambda m: m == "WATCHDOG=1", 10)  # pinged at half of WATCHDOG_USEC

        # renews without being asked: two serials in a row
        wait_until(lambda: len(serials(state, "mx1.example.com")) >= 2, 90, "two renewals", log)
        notify.wait_for(lambda m: m.startswith("STATUS=renew:"), 30)

        # a second daemon on the same state dir is refused
        second = Cli(config)("run", check=2, timeout=60)
        assert "another certmgr daemon" in second.stderr and str(state) in second.stderr

        # metrics from the running daemon
        body = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert 'certmgr_certificate_days_left{hostname="mx1.example.com",key_type="rsa"}' in body
        assert 'certmgr_job_last_success_timestamp_seconds{job="renew"}' in body

        # SIGHUP with a broken config: the old one is kept, and said so
        good = config.read_text()
        config.write_text(good + "\n[[mta]]\nhostname = \"bad host\"\n")
        proc.send_signal(signal.SIGHUP)
        notify.wait_for(lambda m: "reload failed" in m, 20)
        assert "keeping the running configuration" in log.read_text()
        assert proc.poll() is None

        # SIGHUP with a good config adding an MTA: it gets a certificate
        config.write_text(good + MTA2)
        proc.send_signal(signal.SIGHUP)
        notify.wait_for(lambda m: "configuration reloaded, 2 MTAs" in m, 20)
        wait_until(lambda: bool(serials(state, "mx2.example.com", "ecdsa")), 60, "mx2 issued", log)

        # SIGTERM: finishes the current step, exits 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        notify.wait_for(lambda m: "STOPPING=1" in m, 5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        notify.close()
    text = log.read_text()
    assert text.count("renew: mx1.example.com (rsa): issued: serial") >= 2, text
    assert "stopped" in text
    assert "BEGIN" not in text and "PRIVATE" not in text  # no key material in the log

    # the job state survives the process
    store = Store(load_config(config).settings.database)
    try:
        jobs = queue.job_states(store)
        assert {"renew", "remind", "probe", "ari"} <= set(jobs)
        assert jobs["renew"].last_success is not None and jobs["renew"].running_until is None
        assert jobs["renew"].last_error is None
    finally:
        store.close()


@pytest.mark.parametrize("how", ["removed", "replaced"])
def test_daemon_stops_with_an_alert_when_its_database_is_removed_or_replaced(
        tmp_path: Path, pebble: Pebble, how: str) -> None:
    """A daemon whose SQLite file is deleted (or swapped) under it would go on writing a file nobody
    reads, then a restart would order everything again: it must notice, tell people and stop."""
    smtpd = SmtpServer(tmp_path)
    smtpd.start()
    try:
        extra = f"""
{smtpd.notify_toml()}
[daemon]
renew_interval = 2
remind_interval = 3600
probe_interval = 0
ari_interval = 0
"""
        mta = '[[mta]]\nhostname = "mx1.example.com"\nissuer = "pebble"\nnotify = ["ops"]\n'
        config = acme_config(tmp_path, pebble, mta, extra=extra)
        config.write_text(config.read_text().replace("[certmgr]\n", f'[certmgr]\ntrust = "{smtpd.ca_file}"\n', 1))
        state, log = tmp_path / "state", tmp_path / "daemon.log"
        env = {k: v for k, v in os.environ.items() if k not in ("CERTMGR_CONFIG", "NOTIFY_SOCKET", "WATCHDOG_USEC")}
        with open(log, "wb") as err:
            proc = subprocess.Popen([sys.executable, "-m", "certmgr", "-c", str(config), "run"],
                                    stdout=subprocess.DEVNULL, stderr=err, env=env)
        try:
            wait_until(lambda: bool(serials(state, "mx1.example.com")), 60, "the first issuance", log)
            db = state / "certmgr.db"
            if how == "removed":
                for p in state.glob("certmgr.db*"):
                    p.unlink()
            else:
                copy = state / "certmgr.db.new"
                copy.write_bytes(db.read_bytes())
                os.replace(copy, db)
            assert proc.wait(30) == 2, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        text = log.read_text()
        assert f"the database file {db} was {how}" in text and "certmgr recover" in text, text
        wait_until(lambda: len(smtpd.messages) == 1, 10, "the alert mail", log)
        alert = smtpd.messages[0].message
        assert "DAEMON STOPPED" in str(alert["Subject"]), alert["Subject"]
        assert "recover" in plain_body(alert)
        if how == "removed":
            # systemd restarts it: it refuses, saying what to do, and orders nothing
            before = serials(state, "mx1.example.com")
            again = Cli(config)("run", check=2, timeout=60)
            assert "certmgr recover" in again.stderr, again.stderr
            assert serials(state, "mx1.example.com") == before
    finally:
        smtpd.stop()
