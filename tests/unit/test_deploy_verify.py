"""deploy_and_verify(): retries while a reload settles, rolls back on mismatch, reports why."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certmgr.deploy.verify import DeployOutcome, deploy_and_verify
from certmgr.interfaces import CertBundle, DeployRequest, Options, ProviderEnv, VerifyTarget
from certmgr.probe.client import ProbeResult
from certmgr.probe.facts import certificate_facts
from providers.deployers.exec import ExecDeployer
from tests.peers.testca import TestCA

HOST = "mx1.example.com"


def served(bundle: CertBundle | None, key_alg: str | None = None) -> ProbeResult:
    base = ProbeResult(target="127.0.0.1:25", protocol="smtp", implicit_tls=False, key_alg=key_alg)
    if bundle is None:
        return dataclasses.replace(base, error="cannot connect to 127.0.0.1:25: connection refused",
                                   unreachable=True)
    der = x509.load_pem_x509_certificate(bundle.cert_pem).public_bytes(Encoding.DER)
    return dataclasses.replace(base, starttls=True, certificate=certificate_facts(der, (), trust_file=None),
                               leaf_der=der)


class Scripted:
    """A probe that serves the given bundles in turn (the last one from then on)."""

    def __init__(self, answers: list[CertBundle | None]) -> None:
        self.answers = answers
        self.calls: list[tuple[VerifyTarget, str | None]] = []

    def __call__(self, target: VerifyTarget, key_alg: str | None) -> ProbeResult:
        self.calls.append((target, key_alg))
        return served(self.answers[min(len(self.calls), len(self.answers)) - 1], key_alg)


@pytest.fixture
def deployer(tmp_path: Path) -> ExecDeployer:
    table = {"command": [sys.executable, "-c", "pass"], "cert_dir": str(tmp_path)}
    return ExecDeployer.from_config("x", Options(table, where="deploy.x", base_dir=tmp_path),
                                    ProviderEnv(config_dir=tmp_path, state_dir=tmp_path))


def run(deployer: ExecDeployer, bundles: tuple[CertBundle, ...], probe: Callable[..., ProbeResult]) -> DeployOutcome:
    request = DeployRequest(hostname=HOST, bundles=bundles, verify=VerifyTarget("127.0.0.1", 25))
    return deploy_and_verify(deployer, request, probe, attempts=3, delay=0, sleep=lambda s: None)


def test_retries_until_the_reload_shows(deployer: ExecDeployer, tmp_path: Path) -> None:
    ca = TestCA()
    old, new = ca.leaf(HOST), ca.leaf(HOST)
    probe = Scripted([old, old, new])
    outcome = run(deployer, (new,), probe)
    assert outcome.ok and not outcome.rolled_back and outcome.verified_at is not None
    assert len(probe.calls) == 3 and probe.calls[0][1] is None


def test_old_certificate_still_served_rolls_back(deployer: ExecDeployer, tmp_path: Path) -> None:
    ca = TestCA()
    old, new = ca.leaf(HOST), ca.leaf(HOST)
    verified = DeployRequest(hostname=HOST, bundles=(old,), verify=VerifyTarget("127.0.0.1", 25))
    deployer.commit(deployer.install(verified))
    outcome = run(deployer, (new,), Scripted([old]))
    assert not outcome.ok and outcome.rolled_back
    assert f"127.0.0.1:25 still serves the certificate with SHA-256 {old.sha256[:16]}" in (outcome.reason or "")
    assert (tmp_path / f"{HOST}.rsa.crt").read_bytes() == old.cert_pem


def test_unreachable_after_reload_rolls_back(deployer: ExecDeployer) -> None:
    outcome = run(deployer, (TestCA().leaf(HOST),), Scripted([None]))
    assert outcome.rolled_back and "connection refused" in (outcome.reason or "")


def test_dual_probes_each_algorithm(deployer: ExecDeployer) -> None:
    ca = TestCA()
    rsa, ec = ca.leaf(HOST), ca.leaf(HOST, key_type="ecdsa-p256")
    calls: list[str | None] = []

    def probe(target: VerifyTarget, key_alg: str | None) -> ProbeResult:
        calls.append(key_alg)
        return served(rsa if key_alg == "rsa" else ec, key_alg)

    outcome = run(deployer, (rsa, ec), probe)
    assert outcome.ok and calls == ["rsa", "ecdsa"]
    assert outcome.served_sha256s == {"127.0.0.1:25/rsa": rsa.sha256, "127.0.0.1:25/ecdsa": ec.sha256}


def test_unusable_trust_file_during_verification_rolls_back(deployer: ExecDeployer, tmp_path: Path) -> None:
    """The probe reads [certmgr] trust; a file broken since validate is a failed verification that
    puts the old certificate back, never an exception that leaves the new files half-deployed."""
    ca = TestCA()
    old, new = ca.leaf(HOST), ca.leaf(HOST)
    verified = DeployRequest(hostname=HOST, bundles=(old,), verify=VerifyTarget("127.0.0.1", 25))
    deployer.commit(deployer.install(verified))
    trust = tmp_path / "roots.pem"
    trust.write_bytes(b"not a certificate\n")
    der = x509.load_pem_x509_certificate(new.cert_pem).public_bytes(Encoding.DER)

    def probe(target: VerifyTarget, key_alg: str | None) -> ProbeResult:
        facts = certificate_facts(der, (), trust_file=trust)  # what the real probe does with what it got
        return ProbeResult(target="127.0.0.1:25", protocol="smtp", implicit_tls=False, key_alg=key_alg,
                           starttls=True, certificate=facts, leaf_der=der)

    outcome = run(deployer, (new,), probe)
    assert not outcome.ok and outcome.rolled_back, outcome
    assert str(trust) in (outcome.reason or "") and "PEM" in (outcome.reason or "")
    assert (tmp_path / f"{HOST}.rsa.crt").read_bytes() == old.cert_pem


def test_unexpected_error_during_verification_rolls_back(deployer: ExecDeployer, tmp_path: Path) -> None:
    ca = TestCA()
    old, new = ca.leaf(HOST), ca.leaf(HOST)
    verified = DeployRequest(hostname=HOST, bundles=(old,), verify=VerifyTarget("127.0.0.1", 25))
    deployer.commit(deployer.install(verified))

    def probe(target: VerifyTarget, key_alg: str | None) -> ProbeResult:
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "a reply the probe did not expect")

    outcome = run(deployer, (new,), probe)
    assert not outcome.ok and outcome.rolled_back and "UnicodeDecodeError" in (outcome.reason or ""), outcome
    assert (tmp_path / f"{HOST}.rsa.crt").read_bytes() == old.cert_pem
