"""TLSA rollover through the CLI: `certmgr renew --force` issues from pebble (DNS-01 through a
DNSSEC-signed BIND zone), publishes the new key's record beside the current one in `[dns.corp]`,
and the deployment *waits* (exit 0, shown in `status`) until a lagging secondary serves the record
and 2 x TTL have passed; later `certmgr renew` runs deploy into a real Postfix and retire the old
record.  Postfix's `posttls-finger -l dane`, resolving through a validating resolver fed by the
secondary, verifies the MTA after every command."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from certmgr.probe.client import probe
from certmgr.probe.dane import record_for
from tests.e2e.conftest import Cli
from tests.peers.named import dane_verified, posttls_finger
from tests.peers.pebble import DaneWorld, dane_world
from tests.peers.postfix import PostfixPeer, write_chain_files
from tests.peers.testca import TestCA

pytestmark = pytest.mark.integration

MX = "mx1.example.test"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaneWorld]:
    with dane_world(tmp_path_factory.mktemp("dane-cli"), hosts=("mx1",)) as w:
        yield w


def write_config(tmp_path: Path, world: DaneWorld, peer: PostfixPeer, cert_dir: Path, *,
                 dane: str = 'publish = "corp", usage = "3 1 1"', mta_extra: str = "", tables: str = "") -> Cli:
    """``dane``: the inside of the MTA's ``dane = { ... }``; ``mta_extra``: more keys of the
    [[mta]]; ``tables``: more tables after it (a [notify.NAME])."""
    trust = tmp_path / "trust.pem"
    trust.write_bytes(world.pebble.root_pem())
    p, s = world.primary, world.secondary
    path = tmp_path / "certmgr.toml"
    path.write_text(f"""[certmgr]
state_dir = "{tmp_path / 'state'}"
resolver = "{p.server}"
trust = "{trust}"

{world.pebble.issuer_toml(challenge=p.challenge_toml())}
{p.zone_toml(ttl=2, nameservers=[p.server, s.server])}timeout = 2

[deploy.mx1]
type = "postfix"
config_dir = "{peer.config_dir}"
cert_dir = "{cert_dir}"

[[mta]]
hostname = "{MX}"
key = "ecdsa-p256"
issuer = "pebble"
deploy = ["mx1"]
smtp = "127.0.0.1:{peer.port}"
dane = {{ {dane} }}
{mta_extra}
{tables}""")
    return Cli(path)


def test_forced_renewals_wait_for_dns_and_never_break_dane(world: DaneWorld, tmp_path: Path) -> None:
    cert_dir = tmp_path / "certs"
    cert_dir.mkdir()
    old = TestCA().leaf(MX, key_type="ecdsa-p256")
    peer = PostfixPeer(tmp_path / "postfix", hostname=MX, chain_files=write_chain_files(cert_dir, [old])).start()
    owner = f"_{peer.port}._tcp.{MX}"
    cli = write_config(tmp_path, world, peer, cert_dir)

    def finger_ok(when: str) -> None:
        r = posttls_finger(world.resolver, MX, peer.port)
        assert dane_verified(r), f"posttls-finger failed {when}:\n{r.stdout}{r.stderr}"

    def served() -> str:
        r = probe("127.0.0.1", peer.port, servername=MX, key_alg="ecdsa", timeout=5)
        assert r.certificate is not None
        return r.certificate.sha256

    def published() -> set[str]:
        return {v.lower() for v in world.primary.query("TLSA", owner)}

    try:
        first = x509.load_pem_x509_certificate(old.cert_pem)
        world.primary.replace(owner + ".", "TLSA", [str(record_for(first))], ttl=2)
        world.secondary.sync()
        finger_ok("before certmgr started")
        seen = [served()]
        current = first
        for renewal in range(2):
            out = json.loads(cli("renew", "--force", "--json").stdout)
            actions = [o["action"] for o in out]
            assert actions == ["issued", "deploy-waiting"], out
            finger_ok(f"after renew --force {renewal}")
            assert served() == seen[-1], "nothing is deployed while its record is not visible everywhere"
            rows = cli.json("status", "--json")
            assert rows[0]["state"] == "deploy_waiting" and "waiting for DANE" in rows[0]["last_error"], rows
            assert rows[0]["dane"]["step"] == "waiting" and rows[0]["dane"]["owner"] == owner, rows[0]["dane"]
            assert rows[0]["dane"]["current"] == [str(record_for(current))] and not rows[0]["dane"]["late"]
            new = x509.load_pem_x509_certificate(
                (tmp_path / "state" / "certs" / MX / "ecdsa" / rows[0]["serial"] / "cert.pem").read_bytes())
            assert str(record_for(new)) in published(), "the new key's record is published beside the old one"
            assert len(published()) == 2

            waits = 0
            for _ in range(60):  # later runs (the daemon's renew job) deploy once DNS allows
                out = json.loads(cli("renew", "--json").stdout)
                finger_ok(f"after a renew run of renewal {renewal}: {out}")
                if any(o["action"] == "deployed" for o in out):
                    break
                assert [o["action"] for o in out] == ["not-due", "deploy-waiting"], out
                waits += 1
                if waits == 2:  # the lagging secondary catches up, late
                    world.secondary.sync()
                time.sleep(1)
            else:
                pytest.fail(f"renewal {renewal} was never deployed: {cli.json('status', '--json')[0]['dane']}")
            if renewal == 0:  # later renewals certify the key generated ahead, whose record the secondary
                # got at the last sync: they need not wait for it (tests/e2e/test_dane_next_key_cli.py)
                assert waits >= 2, "deployed before the secondary served the record"
            seen.append(served())
            assert seen[-1] == rows[0]["sha256"]
            for _ in range(30):  # the old record goes once its TTL has passed
                assert "deploy" not in cli("renew").stdout
                finger_ok(f"after retiring in renewal {renewal}")
                dane = cli.json("status", "--json")[0]["dane"]
                # what stays: the served key's record and that of the key generated ahead
                if published() == {str(record_for(new)), *dane["next"]} and len(dane["next"]) == 1:
                    break
                time.sleep(1)
            else:
                pytest.fail(f"the old record was not retired: {published()}")
            world.secondary.sync()
            finger_ok(f"after renewal {renewal} retired the old record")
            current = new
            dane = cli.json("status", "--json")[0]["dane"]
            assert dane["step"] == "idle" and dane["current"] == [str(record_for(new))], dane
            report = json.loads(cli("check", "--json", check=None).stdout)[0]
            assert report["dane_rollover"]["step"] == "idle" and report["mta_sts"] == [], report
        assert len(set(seen)) == 3
    finally:
        peer.stop()
