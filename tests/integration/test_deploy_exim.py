"""Deploy into a real Exim 4.96 (unpacked Debian package, see tests/peers/exim.py), dual keys included."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certmgr.deploying import DeployOutcome, deploy_and_verify, make_probe_fn
from certmgr.interfaces import CertBundle, DeployRequest, Options, ProviderEnv, VerifyTarget
from certmgr.probe import probe
from providers.deployers.exim import EximDeployer
from tests.peers.exim import EximPeer, exim_env
from tests.peers.testca import TestCA

pytestmark = pytest.mark.integration
HOST = "mx1.example.com"


class Site:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca = TestCA()
        self.trust = self.ca.write_root(root / "root.pem")
        self.old = [self.ca.leaf(HOST), self.ca.leaf(HOST, key_type="ecdsa-p256")]
        names = [f"{HOST}.{b.key_alg}" for b in self.old]
        self.peer = EximPeer(root, hostname=HOST, certs=[f"{n}.crt" for n in names],
                             keys=[f"{n}.key" for n in names])
        for b, crt, key in zip(self.old, self.peer.certs, self.peer.keys, strict=True):
            crt.write_bytes(b.fullchain_pem)
            self.peer.install_key(key, b.key_pem)

    def deploy(self, bundles: list[CertBundle], **extra: Any) -> DeployOutcome:
        table = {"cert_dir": str(self.peer.cert_dir), "exim_binary": str(self.peer.binary),
                 "config_file": str(self.peer.conf), "reload_command": self.peer.reload_command,
                 "group": "Debian-exim", **extra}
        deployer = EximDeployer.from_config("exim", Options(table, where="deploy.exim", base_dir=self.root),
                                            ProviderEnv(config_dir=self.root, state_dir=self.root))
        request = DeployRequest(hostname=HOST, bundles=tuple(bundles), verify=VerifyTarget("127.0.0.1", self.peer.port))
        return deploy_and_verify(deployer, request, make_probe_fn(HOST, trust_file=self.trust, timeout=5),
                                 attempts=10, delay=0.3)

    def served(self, key_alg: str) -> str | None:
        r = probe("127.0.0.1", self.peer.port, servername=HOST, trust_file=self.trust, timeout=5, key_alg=key_alg)
        return r.certificate.sha256 if r.certificate else None


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    # the config test runs the unpacked exim binary, which needs its library path
    monkeypatch.setenv("LD_LIBRARY_PATH", exim_env()["LD_LIBRARY_PATH"])
    s = Site(tmp_path)
    s.peer.start()
    yield s
    s.peer.stop()


def test_dual_deploy_both_served(site: Site) -> None:
    assert site.served("rsa") == site.old[0].sha256 and site.served("ecdsa") == site.old[1].sha256
    new = [site.ca.leaf(HOST), site.ca.leaf(HOST, key_type="ecdsa-p256")]
    outcome = site.deploy(new)
    assert outcome.ok, outcome.reason
    assert site.served("rsa") == new[0].sha256 and site.served("ecdsa") == new[1].sha256
    key = site.peer.cert_dir / f"{HOST}.ecdsa.key"
    st = key.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_gid == site.peer.user.pw_gid and st.st_uid == os.getuid()


def test_broken_config_is_caught_by_exim_bV_and_rolled_back(site: Site) -> None:
    good = site.peer.conf.read_text()
    site.peer.conf.write_text(good + "no_such_option = 1\n")
    try:
        outcome = site.deploy([site.ca.leaf(HOST), site.ca.leaf(HOST, key_type="ecdsa-p256")])
    finally:
        site.peer.conf.write_text(good)
    assert not outcome.ok and outcome.rolled_back
    assert "exim config test" in (outcome.reason or "") and "no_such_option" in (outcome.reason or "")
    # the reload after restoring the files met the same broken config, and the outcome says so
    assert "the reload after restoring them failed too" in (outcome.reason or "")
    assert (site.peer.cert_dir / f"{HOST}.rsa.key").read_bytes() == site.old[0].key_pem
    subprocess.run(site.peer.reload_command, check=True)
    assert site.served("rsa") == site.old[0].sha256 and site.served("ecdsa") == site.old[1].sha256


def test_failed_reload_rolls_back(site: Site) -> None:
    outcome = site.deploy([site.ca.leaf(HOST), site.ca.leaf(HOST, key_type="ecdsa-p256")],
                          reload_command=["false"])
    assert not outcome.ok and outcome.rolled_back
    assert (site.peer.cert_dir / f"{HOST}.rsa.crt").read_bytes() == site.old[0].fullchain_pem
    assert site.served("rsa") == site.old[0].sha256
