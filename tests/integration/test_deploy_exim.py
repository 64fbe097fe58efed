"""Deploy into a real Exim 4.96 (unpacked Debian package, see tests/peers/exim.py), dual keys included."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certmgr.deploy.verify import DeployOutcome, deploy_and_verify, make_probe_fn
from certmgr.interfaces import CertBundle, DeployRequest, Options, ProviderEnv, VerifyTarget
from certmgr.probe.client import probe
from providers.deployers.exim import EximDeployer
from tests.peers.exim import EximPeer, exim_env
from tests.peers.testca import TestCA

pytestmark = pytest.mark.integration
HOST = "mx1.example.com"


class Site:
    def __init__(self, root: Path, *, include_tls: bool = False) -> None:
        self.root = root
        self.ca = TestCA()
        self.trust = self.ca.write_root(root / "root.pem")
        self.old = [self.ca.leaf(HOST), self.ca.leaf(HOST, key_type="ecdsa-p256")]
        names = [f"{HOST}.{b.key_alg}" for b in self.old]
        self.peer = EximPeer(root, hostname=HOST, certs=[f"{n}.crt" for n in names],
                             keys=[f"{n}.key" for n in names], include_tls=include_tls)
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


OTHER = "submit.example.com"


@pytest.fixture
def sni_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.setenv("LD_LIBRARY_PATH", exim_env()["LD_LIBRARY_PATH"])
    s = Site(tmp_path, include_tls=True)
    s.peer.start()
    yield s
    s.peer.stop()


def deploy_two(site: Site, **extra: Any) -> tuple[DeployOutcome, list[CertBundle], CertBundle]:
    """mx1 (primary, RSA+ECDSA) and submit (ECDSA) on the one Exim, as one request."""
    from certmgr.interfaces import HostBundles

    first = [site.ca.leaf(HOST), site.ca.leaf(HOST, key_type="ecdsa-p256")]
    second = site.ca.leaf(OTHER, ("smtp.example.com",), key_type="ecdsa-p256")
    verify = VerifyTarget("127.0.0.1", site.peer.port)
    hosts = (HostBundles(HOST, tuple(first), verify), HostBundles(OTHER, (second,), verify))
    assert site.peer.tls_config is not None
    table = {"cert_dir": str(site.peer.cert_dir), "exim_binary": str(site.peer.binary),
             "config_file": str(site.peer.conf), "reload_command": site.peer.reload_command,
             "group": "Debian-exim", "tls_config": str(site.peer.tls_config), **extra}
    deployer = EximDeployer.from_config("exim", Options(table, where="deploy.exim", base_dir=site.root),
                                        ProviderEnv(config_dir=site.root, state_dir=site.root))
    outcome = deploy_and_verify(deployer, DeployRequest(HOST, tuple(first), verify, hosts),
                                make_probe_fn(HOST, trust_file=site.trust, timeout=5), attempts=10, delay=0.3)
    return outcome, first, second


def served_sni(site: Site, servername: str, key_alg: str | None = None) -> str | None:
    r = probe("127.0.0.1", site.peer.port, servername=servername, trust_file=site.trust, timeout=5,
              key_alg=key_alg)
    return r.certificate.sha256 if r.certificate else None


def test_two_hostnames_chosen_by_tls_in_sni(sni_site: Site) -> None:
    outcome, first, second = deploy_two(sni_site)
    assert outcome.ok, outcome.reason
    assert served_sni(sni_site, HOST, "rsa") == first[0].sha256
    assert served_sni(sni_site, HOST, "ecdsa") == first[1].sha256
    assert served_sni(sni_site, OTHER) == second.sha256
    assert served_sni(sni_site, "SMTP.example.com") == second.sha256, "a SAN selects it, in any case"
    assert served_sni(sni_site, "", "ecdsa") == first[1].sha256, "no SNI: the primary's"
    assert served_sni(sni_site, "", "rsa") == first[0].sha256
    assert "$tls_in_sni" in (sni_site.peer.tls_config.read_text() if sni_site.peer.tls_config else "")


def test_two_hostnames_rolled_back_as_one(sni_site: Site) -> None:
    tls_config = sni_site.peer.tls_config
    assert tls_config is not None
    tls_config.chmod(0o600)
    before = tls_config.read_bytes()
    outcome, _, _ = deploy_two(sni_site, reload_command=["false"])
    assert not outcome.ok and outcome.rolled_back, outcome.reason
    assert tls_config.read_bytes() == before and stat.S_IMODE(tls_config.stat().st_mode) == 0o600
    assert not list(sni_site.peer.cert_dir.glob(f"{OTHER}.*")), "the new hostname's files are removed"
    key = sni_site.peer.cert_dir / f"{HOST}.rsa.key"
    st = key.stat()
    assert key.read_bytes() == sni_site.old[0].key_pem
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o640, sni_site.peer.user.pw_gid)
    assert served_sni(sni_site, OTHER, "rsa") == sni_site.old[0].sha256
