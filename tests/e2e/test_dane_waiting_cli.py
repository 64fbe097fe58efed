"""What people see while a TLSA rollover waits, through the CLI: a deployment waiting on a
lagging secondary is reported (exit 0, `deploy-waiting`, the plain `status` table), not
failed; once it has waited longer than ``dane.late_after`` the MTA's notifier gets one notice
(not one per run) and `status` says LATE.  A change that would put more records in the RRset
than ``dane.max_records`` blocks the deployment (exit 1), and nothing is published.  Postfix's
``posttls-finger -l dane`` verifies the MTA after every command."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from certmgr.probe.client import probe
from certmgr.probe.dane import record_for
from tests.e2e.test_dane_rollover_cli import MX, write_config
from tests.peers.named import dane_verified, posttls_finger
from tests.peers.pebble import DaneWorld, dane_world
from tests.peers.postfix import PostfixPeer, write_chain_files
from tests.peers.smtpd import SmtpServer, plain_body
from tests.peers.testca import TestCA

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaneWorld]:
    with dane_world(tmp_path_factory.mktemp("dane-waiting"), hosts=("mx1",)) as w:
        yield w


class Mta:
    """A Postfix serving a test CA certificate whose record certmgr takes over."""

    def __init__(self, world: DaneWorld, tmp_path: Path) -> None:
        self.world = world
        self.cert_dir = tmp_path / "certs"
        self.cert_dir.mkdir()
        old = TestCA().leaf(MX, key_type="ecdsa-p256")
        self.old_record = str(record_for(x509.load_pem_x509_certificate(old.cert_pem)))
        self.peer = PostfixPeer(tmp_path / "postfix", hostname=MX,
                                chain_files=write_chain_files(self.cert_dir, [old])).start()
        self.owner = f"_{self.peer.port}._tcp.{MX}"
        self.first_served = self.served()

    def publish(self, records: list[str]) -> None:
        self.world.primary.replace(self.owner + ".", "TLSA", records, ttl=2)
        self.world.secondary.sync()

    def published(self) -> set[str]:
        return {v.lower() for v in self.world.primary.query("TLSA", self.owner)}

    def served(self) -> str:
        r = probe("127.0.0.1", self.peer.port, servername=MX, key_alg="ecdsa", timeout=5)
        assert r.certificate is not None
        return r.certificate.sha256

    def finger_ok(self, when: str) -> None:
        r = posttls_finger(self.world.resolver, MX, self.peer.port)
        assert dane_verified(r), f"posttls-finger failed {when}:\n{r.stdout}{r.stderr}"


def test_a_deployment_waiting_on_dns_is_reported_then_notified_once_when_late(world: DaneWorld, tmp_path: Path) -> None:
    smtpd = SmtpServer(tmp_path, starttls=False)
    smtpd.start()
    mta = Mta(world, tmp_path)
    try:
        cli = write_config(tmp_path, world, mta.peer, mta.cert_dir,
                           dane='publish = "corp", usage = "3 1 1", late_after = 20', mta_extra='notify = ["ops"]',
                           tables=f'[notify.ops]\ntype = "email"\nsmtp = "127.0.0.1:{smtpd.port}"\n'
                                  'from = "certmgr@example.test"\nto = ["ops@example.test"]\ntls = "none"\n'
                                  "timeout = 5\n")
        mta.publish([mta.old_record])
        mta.finger_ok("before certmgr started")
        # the secondary is never told to transfer again: it lags for the rest of the test
        out = json.loads(cli("renew", "--force", "--json").stdout)  # exit 0: waiting is not failing
        assert [o["action"] for o in out] == ["issued", "deploy-waiting"], out
        mta.finger_ok("after renew --force")
        text = cli("status").stdout
        assert "deploy_waiting" in text and "TLSA owner" in text and mta.owner in text, text
        row = next(line for line in text.splitlines() if line.startswith(MX + "\t" + mta.owner))
        assert "\twaiting\t" in row and "1 current" in row and "1 pending" in row and "LATE" not in row, row
        assert smtpd.messages == []

        since = datetime.fromisoformat(cli.json("status", "--json")[0]["dane"]["waiting_since"])
        time.sleep(max(0.0, (since + timedelta(seconds=21) - datetime.now(UTC)).total_seconds()))  # > late_after
        for run in range(3):
            out = json.loads(cli("renew", "--json").stdout)
            assert [o["action"] for o in out][:2] == ["not-due", "deploy-waiting"], out
            mta.finger_ok(f"after renew run {run}")
        late = [m for m in smtpd.messages if "waiting on DNS" in m.message["Subject"]]
        assert len(late) == 1, [m.message["Subject"] for m in smtpd.messages]
        body = plain_body(late[0].message)
        assert mta.owner in body and "secondaries" in body, body
        row = next(line for line in cli("status").stdout.splitlines() if line.startswith(MX + "\t" + mta.owner))
        assert "LATE: waiting on DNS" in row, row
        assert mta.served() == mta.first_served, "nothing is deployed while its record is not everywhere"
    finally:
        mta.peer.stop()
        smtpd.stop()


def test_more_records_than_max_records_block_the_deployment_and_nothing_is_published(
        world: DaneWorld, tmp_path: Path) -> None:
    mta = Mta(world, tmp_path)
    try:
        cli = write_config(tmp_path, world, mta.peer, mta.cert_dir,
                           dane='publish = "corp", usage = "3 1 1", max_records = 2')
        other = "3 1 1 " + "ab" * 32  # a record someone else keeps there: taken over with the rest
        mta.publish([mta.old_record, other])
        before = mta.published()
        mta.finger_ok("before certmgr started")
        r = cli("renew", "--force", "--json", check=1)
        out = json.loads(r.stdout)
        assert [o["action"] for o in out] == ["issued", "deploy-failed"], out
        assert "max_records = 2" in out[1]["message"], out
        assert mta.published() == before, "nothing is published beyond the cap"
        assert mta.served() == mta.first_served
        mta.finger_ok("after the refused rollover")
        row = cli.json("status", "--json")[0]
        assert row["state"] == "deploy_blocked" and "max_records" in row["last_error"], row
    finally:
        mta.peer.stop()
