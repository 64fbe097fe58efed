"""Remote deployment over SSH: the Postfix deployer reaches a Postfix through a loopback sshd.

Everything the deployer does (backups, atomic writes, postfix check, reload)
goes through the OpenSSH client with BatchMode and strict host-key checking.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certmgr.deploy.verify import DeployOutcome, deploy_and_verify, make_probe_fn
from certmgr.errors import DeployError
from certmgr.interfaces import CertBundle, DeployRequest, Options, ProviderEnv, VerifyTarget
from certmgr.probe.client import probe
from providers.deployers.hosts import SshHost
from providers.deployers.postfix import PostfixDeployer
from tests.peers.postfix import PostfixPeer, chain_file_pem
from tests.peers.sshd import SshdPeer
from tests.peers.testca import TestCA

pytestmark = pytest.mark.integration
HOST = "mx1.example.com"


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SshdPeer]:
    peer = SshdPeer(tmp_path / "sshd").start()
    yield peer
    peer.stop()


class Site:
    def __init__(self, root: Path, sshd: SshdPeer) -> None:
        self.root, self.sshd = root, sshd
        self.ca = TestCA()
        self.trust = self.ca.write_root(root / "root.pem")
        self.cert_dir = root / "certs"
        self.cert_dir.mkdir()
        self.old = self.ca.leaf(HOST)
        chain = self.cert_dir / f"{HOST}.rsa.pem"
        chain.write_bytes(chain_file_pem(self.old))
        chain.chmod(0o600)
        self.peer = PostfixPeer(root / "postfix", hostname=HOST, chain_files=[chain])

    def deploy(self, bundles: list[CertBundle], **extra: Any) -> DeployOutcome:
        table = {"config_dir": str(self.peer.config_dir), "cert_dir": str(self.cert_dir), "host": self.sshd.url,
                 "ssh_identity": str(self.sshd.identity), "ssh_known_hosts": str(self.sshd.known_hosts), **extra}
        deployer = PostfixDeployer.from_config("edge", Options(table, where="deploy.edge", base_dir=self.root),
                                               ProviderEnv(config_dir=self.root, state_dir=self.root))
        request = DeployRequest(hostname=HOST, bundles=tuple(bundles), verify=VerifyTarget("127.0.0.1", self.peer.port))
        return deploy_and_verify(deployer, request, make_probe_fn(HOST, trust_file=self.trust, timeout=5),
                                 attempts=10, delay=0.3)


    def served(self) -> str | None:
        r = probe("127.0.0.1", self.peer.port, servername=HOST, trust_file=self.trust, timeout=5)
        return r.certificate.sha256 if r.certificate else None


@pytest.fixture
def site(tmp_path: Path, sshd: SshdPeer) -> Iterator[Site]:
    s = Site(tmp_path, sshd)
    s.peer.start()
    yield s
    s.peer.stop()


def test_remote_deploy_over_ssh(site: Site) -> None:
    new = site.ca.leaf(HOST)
    outcome = site.deploy([new])
    assert outcome.ok, outcome.reason
    assert outcome.target == f"postfix:{site.peer.config_dir} on {site.sshd.url}"
    path = site.cert_dir / f"{HOST}.rsa.pem"
    assert path.read_bytes() == chain_file_pem(new) and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Path(f"{path}.certmgr-prev").read_bytes() == chain_file_pem(site.old)
    assert "Accepted publickey for root" in site.sshd.log.read_text()


def test_remote_failed_reload_rolls_back(site: Site) -> None:
    assert site.served() == site.old.sha256  # the idle smtpd holds the old certificate
    outcome = site.deploy([site.ca.leaf(HOST)], reload_command=["false"])
    assert not outcome.ok and outcome.rolled_back
    assert (site.cert_dir / f"{HOST}.rsa.pem").read_bytes() == chain_file_pem(site.old)
    assert site.served() == site.old.sha256


def test_unknown_host_key_is_refused(sshd: SshdPeer, tmp_path: Path) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    host = SshHost("root", "127.0.0.1", sshd.port, identity=sshd.identity, known_hosts=empty)
    with pytest.raises(DeployError, match=r"cannot reach ssh://root@127\.0\.0\.1"):
        host.run(["true"])


def test_remote_arguments_are_quoted(sshd: SshdPeer, tmp_path: Path) -> None:
    host = SshHost("root", "127.0.0.1", sshd.port, identity=sshd.identity, known_hosts=sshd.known_hosts)
    odd = tmp_path / "it's a $(file); name"
    host.write(str(odd), b"data", mode=0o600)
    assert odd.read_bytes() == b"data" and stat.S_IMODE(odd.stat().st_mode) == 0o600
    assert host.read(str(odd)) == b"data" and host.read(str(tmp_path / "missing")) is None
    result = host.run(["printf", "%s|", "a b", "$HOME", "'q'"], env={"X": "1 2"})
    assert result.returncode == 0 and result.output == "a b|$HOME|'q'|"
    link = tmp_path / "link"
    link.symlink_to(odd)
    with pytest.raises(DeployError, match="symbolic link"):
        host.write(str(link), b"x", mode=0o600)
    assert odd.read_bytes() == b"data"


def test_unreachable_host_changes_nothing(site: Site, tmp_path: Path) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    outcome = site.deploy([site.ca.leaf(HOST)], ssh_known_hosts=str(empty))
    assert not outcome.ok
    assert "cannot back up the current files before deploying mx1.example.com, so nothing was changed" in (
        outcome.reason or "")
    assert "Host key verification failed" in (outcome.reason or "")
    assert (site.cert_dir / f"{HOST}.rsa.pem").read_bytes() == chain_file_pem(site.old)


def test_remote_failed_reload_restores_main_cf_mode_and_owner(site: Site, tmp_path: Path) -> None:
    import grp
    import os

    main_cf = site.peer.config_dir / "main.cf"
    os.chown(main_cf, 0, grp.getgrnam("postfix").gr_gid)
    main_cf.chmod(0o644)
    before, st = main_cf.read_bytes(), main_cf.stat()
    outcome = site.deploy([site.ca.leaf(HOST)], cert_dir=str(tmp_path / "managed"), manage_config=True,
                          reload_command=["false"])
    assert not outcome.ok and outcome.rolled_back, outcome.reason
    after = main_cf.stat()
    assert main_cf.read_bytes() == before
    assert (stat.S_IMODE(after.st_mode), after.st_uid, after.st_gid) == (0o644, st.st_uid, st.st_gid)
    assert not (tmp_path / "managed" / f"{HOST}.rsa.pem").exists()


def test_remote_stat_and_restore_owner(sshd: SshdPeer, tmp_path: Path) -> None:
    import grp

    from providers.deployers.hosts import FileMeta

    host = SshHost("root", "127.0.0.1", sshd.port, identity=sshd.identity, known_hosts=sshd.known_hosts)
    path = tmp_path / "main.cf"
    gid = grp.getgrnam("postfix").gr_gid
    host.write(str(path), b"x = 1\n", mode=0o600, owner=FileMeta(0o644, 0, gid))
    assert host.stat(str(path)) == FileMeta(0o644, 0, gid)
    assert host.stat(str(tmp_path / "missing")) is None
