"""Keys generated ahead (RFC 7671 section 8.1, "current + next") through the CLI: after a
deployment certmgr generates the key of the next certificate (0600), publishes its ``3 1 1``
record beside the current one, and the next `certmgr renew --force` certifies that key and
deploys at once, its record having been on every authoritative server (a lagging secondary
included) for 2 x TTL already.  Postfix's ``posttls-finger -l dane`` through a validating
resolver fed by the secondary verifies the MTA before and after."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from certmgr.probe.client import probe
from certmgr.probe.dane import record_for, record_for_key
from certmgr.store.statedir import StateDir
from tests.e2e.test_dane_rollover_cli import MX, write_config
from tests.e2e.test_dane_waiting_cli import Mta
from tests.peers.pebble import DaneWorld, dane_world

pytestmark = pytest.mark.integration

TTL = 2


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaneWorld]:
    with dane_world(tmp_path_factory.mktemp("dane-next"), hosts=("mx1",)) as w:
        yield w


def test_a_renewal_with_a_key_published_ahead_deploys_at_once_and_never_breaks_dane(
        world: DaneWorld, tmp_path: Path) -> None:
    mta = Mta(world, tmp_path)
    cli = write_config(tmp_path, world, mta.peer, mta.cert_dir)
    finger_ok, published = mta.finger_ok, mta.published

    def served() -> x509.Certificate:
        r = probe("127.0.0.1", mta.peer.port, servername=MX, key_alg="ecdsa", timeout=5)
        assert r.leaf_der is not None
        return x509.load_der_x509_certificate(r.leaf_der)

    def renew(*args: str) -> list[str]:
        return [o["action"] for o in json.loads(cli("renew", "--json", *args).stdout)]

    try:
        mta.publish([mta.old_record])
        finger_ok("before certmgr started")
        # taking the MTA over: no key ahead yet, so the first renewal waits for its record
        assert renew("--force") == ["issued", "deploy-waiting"]
        for _ in range(60):
            world.secondary.sync()
            if "deployed" in renew():
                break
            time.sleep(1)
        else:
            pytest.fail("the first renewal was never deployed")
        finger_ok("after the first deployment")

        ahead = StateDir(tmp_path / "state").next_key_path(MX, "ecdsa-p256")
        assert ahead.stat().st_mode & 0o777 == 0o600
        next_record = str(record_for_key(load_pem_private_key(ahead.read_bytes(), None).public_key()))
        for _ in range(60):  # runs of the renew job: old record retired, next record out, its clock running
            world.secondary.sync()
            assert renew()[0] == "not-due"  # and "dane" when a record is published or retired
            dane = cli.json("status", "--json")[0]["dane"]
            since = dane["visible_since"]
            if (dane["step"] == "idle" and published() == {*dane["current"], next_record}
                    and since and (datetime.now(UTC) - datetime.fromisoformat(since)).total_seconds() > 2 * TTL):
                break
            time.sleep(1)
        else:
            pytest.fail(f"the key ahead was not published and seen everywhere: {dane}")
        assert dane["next"] == [next_record]
        finger_ok("with current + next published")

        before = time.monotonic()
        # no wait: the record of the key was out long enough; then the new next record goes out ("dane")
        assert renew("--force")[:2] == ["issued", "deployed"]
        assert time.monotonic() - before < 60
        finger_ok("right after the renewal with the key ahead")
        assert str(record_for(served())) == next_record, "the key generated ahead is the one certified"
        dane = cli.json("status", "--json")[0]["dane"]
        assert dane["current"] == [next_record] and dane["next"] and dane["next"] != [next_record], dane
        world.secondary.sync()
        finger_ok("after the secondary transferred the new next record")
    finally:
        mta.peer.stop()
