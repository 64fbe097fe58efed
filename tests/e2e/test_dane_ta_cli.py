"""``usage = "3 1 1 + 2 1 1"`` through the CLI: the ``2 1 1`` records of the CA's possible
intermediates listed in ``dane.intermediates`` are kept published beside the keys' records, and
a new certificate from an intermediate no published record pins (the CA changed its
hierarchy) is a warning before it is deployed; its record is published and waited for.
``posttls-finger -l dane`` verifies the MTA after every command."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certmgr.probe.dane import USAGE_DANE_TA, record_for
from tests.e2e.test_dane_rollover_cli import write_config
from tests.e2e.test_dane_waiting_cli import Mta
from tests.peers.pebble import DaneWorld, dane_world
from tests.peers.testca import TestCA

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaneWorld]:
    with dane_world(tmp_path_factory.mktemp("dane-ta"), hosts=("mx1",)) as w:
        yield w


def ta(cert: x509.Certificate) -> str:
    return str(record_for(cert, USAGE_DANE_TA))


def test_possible_intermediates_stay_published_and_a_hierarchy_change_warns_first(
        world: DaneWorld, tmp_path: Path) -> None:
    mta = Mta(world, tmp_path)
    other = TestCA("another hierarchy")  # a possible intermediate the CA might issue from
    listed = tmp_path / "intermediates.pem"
    listed.write_bytes(other.inter.public_bytes(Encoding.PEM))
    pebble_inter = x509.load_pem_x509_certificate(world.pebble.intermediate_pem())
    try:
        cli = write_config(tmp_path, world, mta.peer, mta.cert_dir,
                           dane=f'publish = "corp", usage = "3 1 1 + 2 1 1", intermediates = ["{listed}"]')
        mta.publish([mta.old_record])
        mta.finger_ok("before certmgr started")
        out = json.loads(cli("renew", "--force", "--json").stdout)
        assert [o["action"] for o in out] == ["issued", "deploy-waiting"], out
        assert "whose key no published 2 1 1 record pins" in out[1]["message"], out[1]
        assert pebble_inter.subject.rfc4514_string() in out[1]["message"], out[1]
        assert {ta(other.inter), ta(pebble_inter)} <= mta.published(), "listed and new intermediates published"
        mta.finger_ok("after renew --force")
        for _ in range(60):
            mta.world.secondary.sync()
            out = json.loads(cli("renew", "--json").stdout)
            mta.finger_ok(f"after renew {out}")
            if "deployed" in [o["action"] for o in out]:
                break
            time.sleep(1)
        else:
            pytest.fail("never deployed")
        assert ta(other.inter) in mta.published(), "the listed intermediate stays published"

        # the CA's intermediate is now listed: a renewal from it is no hierarchy change
        listed.write_bytes(other.inter.public_bytes(Encoding.PEM) + pebble_inter.public_bytes(Encoding.PEM))
        out = json.loads(cli("renew", "--force", "--json").stdout)
        assert out[0]["action"] == "issued" and not any("pins" in o["message"] for o in out), out
        mta.finger_ok("after the second renewal")
        assert {ta(other.inter), ta(pebble_inter)} <= mta.published()
    finally:
        mta.peer.stop()
