"""TLSA rollover end to end with real peers: pebble issues (DNS-01 through the signed
BIND zone), certmgr publishes current + next TLSA records over RFC 2136, waits until a
lagging secondary serves them for 2 x TTL, deploys into a real Postfix, retires the old
records.  After every step -- and after a SIGKILL at every checkpoint of every step --
Postfix's own ``posttls-finger -l dane``, resolving through a validating resolver fed
by the *secondary*, must verify the MTA."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from certmgr.dns.dane_run import DaneMta
from certmgr.dns.publisher import DnsPublisher, load_publisher
from certmgr.dns.rollover import Step, ee_record
from certmgr.interfaces import Options, ProviderEnv, VerifyTarget
from providers.deployers.postfix import PostfixDeployer
from tests.peers.named import dane_verified, posttls_finger
from tests.peers.pebble import DaneWorld, dane_world, dns01_issue
from tests.peers.postfix import PostfixPeer, write_chain_files
from tests.peers.testca import TestCA

pytestmark = pytest.mark.integration

MX = "mx1.example.test"
KEY_TYPES = ("ecdsa-p256", "rsa-2048")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaneWorld]:
    with dane_world(tmp_path_factory.mktemp("dane-rollover"), hosts=("mx1",)) as w:
        yield w


def _finger_ok(world: DaneWorld, port: int, when: str) -> None:
    r = posttls_finger(world.resolver, MX, port)
    assert dane_verified(r), f"posttls-finger failed {when}:\n{r.stdout}{r.stderr}"


def _publisher_and_deployer(world: DaneWorld, tmp_path: Path, peer: PostfixPeer,
                            cert_dir: Path) -> tuple[DnsPublisher, PostfixDeployer]:
    """``[dns.corp]`` (RFC 2136 to the primary, visible once both servers serve it, TTL 2) and
    the Postfix deployer of ``peer``."""
    env = ProviderEnv(config_dir=tmp_path, state_dir=tmp_path)
    publisher = load_publisher("corp", {
        "type": "rfc2136", "server": world.primary.server, "zone": world.primary.zone,
        "tsig_key_file": str(world.primary.key_file), "ttl": 2,
        "nameservers": [world.primary.server, world.secondary.server], "timeout": 2,
    }, env, base_dir=tmp_path)
    deployer = PostfixDeployer.from_config("mx1", Options(
        {"config_dir": str(peer.config_dir), "cert_dir": str(cert_dir)}, where="deploy.mx1", base_dir=tmp_path), env)
    return publisher, deployer


def test_forced_renewals_with_sigkill_at_every_step_never_break_dane(world: DaneWorld, tmp_path: Path) -> None:
    ca = TestCA()
    cert_dir = tmp_path / "certs"
    cert_dir.mkdir()
    old = [ca.leaf(MX, key_type=t) for t in KEY_TYPES]
    peer = PostfixPeer(tmp_path / "postfix", hostname=MX, chain_files=write_chain_files(cert_dir, old)).start()
    publisher, deployer = _publisher_and_deployer(world, tmp_path, peer, cert_dir)
    issue = dns01_issue(world.pebble, world.primary, tmp_path)

    def mta(checkpoint: Any = lambda name: None) -> DaneMta:
        return DaneMta(state_dir=tmp_path / "state", hostname=MX, publisher=publisher, issue=issue,
                       deploy=deployer.install, verify=VerifyTarget("127.0.0.1", peer.port),
                       key_types=KEY_TYPES, port=peer.port, checkpoint=checkpoint)

    try:
        # certmgr takes over an MTA whose record is published and served everywhere
        served = [[x509.load_pem_x509_certificate(b.cert_pem)] for b in old]
        publisher.replace(f"_{peer.port}._tcp.{MX}", "TLSA", [ee_record(c[0].public_key()) for c in served])
        world.secondary.sync()
        _finger_ok(world, peer.port, "before certmgr started")
        mta().adopt(served)

        children = waits_on_lag = 0
        kill_at = 1  # the checkpoint of the next child to SIGKILL at
        killed_at: list[str] = []  # the checkpoint each SIGKILL hit
        steps_seen: set[str] = set()

        def in_child(action: str) -> str | None:
            """Run one action in a child process, SIGKILLed at its ``kill_at``-th checkpoint,
            and report the step it decided.  A killed action is retried with the kill one
            checkpoint later, until it runs through: every checkpoint of every step is hit."""
            nonlocal children, kill_at
            children += 1
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                os.close(r)
                count = 0

                def checkpoint(name: str) -> None:
                    nonlocal count
                    count += 1
                    if count == kill_at:
                        os.write(w, f"{action}:{name}".encode())
                        os.kill(os.getpid(), signal.SIGKILL)

                try:
                    m = mta(checkpoint)
                    out = m.renew(datetime.now(UTC)) and "renewed" if action == "renew" \
                        else m.step(datetime.now(UTC)).step.value
                    os.write(w, str(out).encode())
                    os._exit(0)
                except BaseException as e:
                    os.write(w, f"error: {e!r}".encode())
                    os._exit(1)
            os.close(w)
            _, status = os.waitpid(pid, 0)
            out = os.read(r, 65536).decode()
            os.close(r)
            if os.WIFSIGNALED(status):
                assert os.WTERMSIG(status) == signal.SIGKILL
                killed_at.append(out)
                kill_at += 1
                return None
            kill_at = 1
            assert os.WEXITSTATUS(status) == 0, out
            return out

        deployed_certs: list[str] = []
        for renewal in range(3):
            while in_child("renew") is None:
                _finger_ok(world, peer.port, f"after a kill while renewing ({renewal})")
            _finger_ok(world, peer.port, f"after renewal {renewal} was issued")
            lagging = 0
            for _ in range(400):
                step = in_child("step")
                _finger_ok(world, peer.port, f"after step {step} of renewal {renewal}")
                if step is None:
                    continue
                steps_seen.add(step)
                if step == Step.WAIT_VISIBLE.value:
                    lagging += 1
                    waits_on_lag += 1
                    if lagging >= 3:  # the secondary catches up, late
                        world.secondary.sync()
                        lagging = 0
                state = mta().load()  # as recorded in the store
                if step == Step.IDLE.value and not state.pending and not state.retiring:
                    break
                if step in (Step.WAIT_TTL.value, Step.IDLE.value):
                    time.sleep(0.5)
            else:
                pytest.fail(f"renewal {renewal} did not finish: {state}")
            fp = os.popen(f"openssl x509 -noout -fingerprint -sha256 -in {cert_dir}/{MX}.ecdsa.pem").read()
            deployed_certs.append(fp)
            assert len(state.current) == 2 and len(state.next) == 2 and not state.retiring
        assert len(set(deployed_certs)) == 3, deployed_certs
        # SIGKILLed after recording, after publishing, after deploying, after issuing
        assert {"step:recorded", "step:published", "step:deployed", "renew:issued", "renew:recorded"} <= set(
            killed_at), killed_at
        assert waits_on_lag >= 3
        # (deploy and retire end in a record, so the run that completes them was the killed one
        # before; the three distinct served certificates and the empty ``retiring`` show them)
        assert {s.value for s in (Step.PUBLISH, Step.WAIT_VISIBLE, Step.WAIT_TTL, Step.IDLE)} <= steps_seen
        journal = tmp_path / "state" / "dane" / MX
        secret = [*(tmp_path / "state" / "keys" / MX).glob("next-*.pem"), *journal.glob("pending.*.pem")]
        assert len(secret) == 4 and all(f.stat().st_mode & 0o777 == 0o600 for f in secret)
        print(f"children={children} kills={len(killed_at)} waits_on_lag={waits_on_lag}")
    finally:
        peer.stop()


def test_ta_and_ee_records_keep_dane_working_across_renewals(world: DaneWorld, tmp_path: Path) -> None:
    """usage "3 1 1 + 2 1 1": the issuing intermediate's record is published beside the keys'."""
    ca = TestCA()
    cert_dir = tmp_path / "certs"
    cert_dir.mkdir()
    old = ca.leaf(MX, key_type="ecdsa-p256")
    peer = PostfixPeer(tmp_path / "postfix", hostname=MX, chain_files=write_chain_files(cert_dir, [old])).start()
    publisher, deployer = _publisher_and_deployer(world, tmp_path, peer, cert_dir)
    issue = dns01_issue(world.pebble, world.primary, tmp_path)

    mta = DaneMta(state_dir=tmp_path / "state", hostname=MX, publisher=publisher, issue=issue,
                  deploy=deployer.install, verify=VerifyTarget("127.0.0.1", peer.port),
                  usages=("3 1 1", "2 1 1"), port=peer.port)
    try:
        leaf = x509.load_pem_x509_certificate(old.cert_pem)
        publisher.replace(f"_{peer.port}._tcp.{MX}", "TLSA", [ee_record(leaf.public_key())])
        world.secondary.sync()
        mta.adopt([[leaf]])
        _finger_ok(world, peer.port, "before certmgr started")
        for renewal in range(2):
            mta.renew(datetime.now(UTC))
            for _ in range(200):
                d = mta.step(datetime.now(UTC))
                _finger_ok(world, peer.port, f"after {d.step.value} of renewal {renewal}")
                if d.step is Step.WAIT_VISIBLE:
                    world.secondary.sync()
                if d.step is Step.IDLE and not d.state.pending and not d.state.retiring:
                    break
                if d.step in (Step.WAIT_TTL, Step.IDLE):
                    time.sleep(0.5)
            state = mta.load()
            assert len(state.current) == 2 and {r[:5] for r in state.current} == {"3 1 1", "2 1 1"}, state
        published = publisher.query(("127.0.0.1", world.primary.port),
                                    f"_{peer.port}._tcp.{MX}", "TLSA").values
        assert sum(v.startswith("2 1 1") for v in published) == 1  # one intermediate, kept across renewals
    finally:
        peer.stop()
