"""Deploy into a real private Postfix and prove it by probing: single, dual, and rollbacks."""

from __future__ import annotations

import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certmgr.deploy.verify import deploy_and_verify, make_probe_fn
from certmgr.interfaces import CertBundle, DeployRequest, Options, ProviderEnv, VerifyTarget
from certmgr.probe.client import probe
from providers.deployers.postfix import PostfixDeployer
from tests.peers.postfix import PostfixPeer, chain_file_pem, wait_until, write_chain_files
from tests.peers.testca import TestCA

pytestmark = pytest.mark.integration
HOST = "mx1.example.com"


class Site:
    """A Postfix whose main.cf points at <cert_dir>/<host>.<alg>.pem, serving ``old`` certificates."""

    def __init__(self, root: Path, algs: tuple[str, ...] = ("rsa-2048",)) -> None:
        self.root = root
        self.ca = TestCA()
        self.trust = self.ca.write_root(root / "root.pem")
        self.cert_dir = root / "certs"
        self.cert_dir.mkdir()
        self.old = [self.ca.leaf(HOST, key_type=a) for a in algs]
        files = write_chain_files(self.cert_dir, self.old)
        self.peer = PostfixPeer(root / "postfix", hostname=HOST, chain_files=files)

    def deployer(self, **extra: Any) -> PostfixDeployer:
        table = {"config_dir": str(self.peer.config_dir), "cert_dir": str(self.cert_dir), **extra}
        env = ProviderEnv(config_dir=self.root, state_dir=self.root)
        return PostfixDeployer.from_config("edge", Options(table, where="deploy.edge", base_dir=self.root), env)

    def request(self, bundles: list[CertBundle]) -> DeployRequest:
        return DeployRequest(hostname=HOST, bundles=tuple(bundles), verify=VerifyTarget("127.0.0.1", self.peer.port))

    def served(self, key_alg: str | None = None) -> str | None:
        r = probe("127.0.0.1", self.peer.port, servername=HOST, trust_file=self.trust, timeout=5, key_alg=key_alg)
        return r.certificate.sha256 if r.certificate else None

    def deploy(self, bundles: list[CertBundle], **extra: Any) -> Any:
        probe_fn = make_probe_fn(HOST, trust_file=self.trust, timeout=5)
        return deploy_and_verify(self.deployer(**extra), self.request(bundles), probe_fn, attempts=10, delay=0.3)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path)
    s.peer.start()
    yield s
    s.peer.stop()


@pytest.fixture
def dual_site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path, ("rsa-2048", "ecdsa-p256"))
    s.peer.start()
    yield s
    s.peer.stop()


def test_deploy_and_verify(site: Site) -> None:
    assert site.served() == site.old[0].sha256
    new = site.ca.leaf(HOST, ("mail.example.com",))
    outcome = site.deploy([new])
    assert outcome.ok, outcome.reason
    assert not outcome.rolled_back and outcome.verified_at is not None
    assert outcome.served_sha256s == {f"127.0.0.1:{site.peer.port}/rsa": new.sha256}
    assert site.served() == new.sha256
    path = site.cert_dir / f"{HOST}.rsa.pem"
    assert path.read_bytes() == new.key_pem + new.cert_pem + new.chain_pem
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    backup = Path(str(path) + ".certmgr-prev")
    assert backup.read_bytes() == chain_file_pem(site.old[0]) and stat.S_IMODE(backup.stat().st_mode) == 0o600


def test_manage_config_points_postfix_at_the_files(site: Site, tmp_path: Path) -> None:
    # a cert_dir main.cf does not mention yet: manage_config writes smtpd_tls_chain_files
    new_dir = tmp_path / "managed"
    new = site.ca.leaf(HOST)
    outcome = site.deploy([new], cert_dir=str(new_dir), manage_config=True)
    assert outcome.ok, outcome.reason
    assert f"smtpd_tls_chain_files = {new_dir}/{HOST}.rsa.pem" in (site.peer.config_dir / "main.cf").read_text()
    assert site.served() == new.sha256


def test_dual_rsa_and_ecdsa_both_served(dual_site: Site) -> None:
    rsa, ec = dual_site.ca.leaf(HOST, key_type="rsa-2048"), dual_site.ca.leaf(HOST, key_type="ecdsa-p256")
    outcome = dual_site.deploy([rsa, ec])
    assert outcome.ok, outcome.reason
    port = dual_site.peer.port
    assert outcome.served_sha256s == {f"127.0.0.1:{port}/rsa": rsa.sha256, f"127.0.0.1:{port}/ecdsa": ec.sha256}
    assert dual_site.served("rsa") == rsa.sha256
    assert dual_site.served("ecdsa") == ec.sha256


def test_failed_reload_restores_previous_certificate(site: Site) -> None:
    # a full handshake first: the idle smtpd then holds the old certificate.  (Without a working
    # reload, an smtpd that starts while the new file is briefly in place would keep the new one.)
    assert site.served() == site.old[0].sha256
    outcome = site.deploy([site.ca.leaf(HOST)], reload_command=["false"])
    assert not outcome.ok and outcome.rolled_back
    assert "postfix reload `false` failed with exit code 1" in (outcome.reason or "")
    assert "the previous files are back" in (outcome.reason or "")
    assert (site.cert_dir / f"{HOST}.rsa.pem").read_bytes() == chain_file_pem(site.old[0])
    assert site.served() == site.old[0].sha256


def test_failed_config_test_restores_previous_certificate(site: Site) -> None:
    main_cf = site.peer.config_dir / "main.cf"
    good = main_cf.read_text()
    main_cf.write_text(good + "daemon_directory = /nonexistent\n")  # `postfix check` fails on it
    try:
        outcome = site.deploy([site.ca.leaf(HOST)])
    finally:
        main_cf.write_text(good)
    assert not outcome.ok and outcome.rolled_back
    assert f"postfix config test `postfix -c {site.peer.config_dir} check` failed" in (outcome.reason or "")
    # the broken main.cf fails the reload after the restore too, and the outcome says so: an smtpd
    # started while the new file was in place may still hold it until the admin reloads
    assert "the reload after restoring them failed too" in (outcome.reason or "")
    assert (site.cert_dir / f"{HOST}.rsa.pem").read_bytes() == chain_file_pem(site.old[0])
    site.peer.reload()
    wait_until(lambda: site.served() == site.old[0].sha256, what="the previous certificate")


def test_mta_still_serving_old_certificate_is_rolled_back(site: Site, tmp_path: Path) -> None:
    # main.cf names certmgr's file, but an SNI map of the admin's own still hands the old
    # certificate to clients asking for HOST: install, check and reload succeed, yet the old
    # certificate is served.  Verification must catch it and roll back.
    # (reload_command = ["true"] would not do for Postfix: each new smtpd process reads the file.)
    from tests.peers.postfix import postconf

    copy = tmp_path / "old-copy.pem"
    copy.write_bytes(chain_file_pem(site.old[0]))
    copy.chmod(0o600)
    own_map = tmp_path / "own-sni"
    own_map.write_text(f"{HOST} {copy}\n")
    subprocess.run(["postmap", "-F", f"hash:{own_map}"], check=True)
    postconf(site.peer, f"tls_server_sni_maps = hash:{own_map}")
    site.peer.reload()
    assert site.served() == site.old[0].sha256
    outcome = site.deploy([site.ca.leaf(HOST)])
    assert not outcome.ok and outcome.rolled_back
    assert "still serves the certificate" in (outcome.reason or "")
    assert (site.cert_dir / f"{HOST}.rsa.pem").read_bytes() == chain_file_pem(site.old[0])  # put back
    assert site.served() == site.old[0].sha256


def test_main_cf_naming_other_files_is_said_before_anything_changes(site: Site, tmp_path: Path) -> None:
    # cert_dir is not where main.cf points (no manage_config): deploying there would reload Postfix
    # for nothing and roll back with "still serves"; it is refused first, saying the line to set
    elsewhere = tmp_path / "unused"
    outcome = site.deploy([site.ca.leaf(HOST)], cert_dir=str(elsewhere))
    reason = outcome.reason or ""
    assert not outcome.ok, reason
    assert (f"main.cf must say: smtpd_tls_chain_files = {elsewhere}/{HOST}.rsa.pem (or set manage_config = true); "
            f"it says: smtpd_tls_chain_files = {site.cert_dir}/{HOST}.rsa.pem") in reason, reason
    assert "nothing was changed" in reason, reason
    assert not (elsewhere / f"{HOST}.rsa.pem").exists()
    assert site.served() == site.old[0].sha256


def test_refuses_to_write_key_through_a_symlink(site: Site, tmp_path: Path) -> None:
    path = site.cert_dir / f"{HOST}.rsa.pem"
    planted = tmp_path / "planted.pem"
    planted.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(planted)
    outcome = site.deploy([site.ca.leaf(HOST)])
    assert not outcome.ok and "symbolic link" in (outcome.reason or "")
    assert path.is_symlink() and planted.read_bytes() == chain_file_pem(site.old[0])


def test_failed_reload_restores_main_cf_mode_and_owner(site: Site, tmp_path: Path) -> None:
    # main.cf as Debian has it, 0644 (local sendmail, run by cron and applications, reads it);
    # manage_config edits it, the reload fails: it must come back byte for byte, mode and owner
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
    assert not (tmp_path / "managed" / f"{HOST}.rsa.pem").exists()  # new, so removed again
    assert site.served() == site.old[0].sha256


OTHER = "submit.example.com"


def two_hosts(site: Site, first: CertBundle, second: CertBundle, **extra: Any) -> Any:
    """HOST (primary) and OTHER served by the one Postfix, as one request."""
    from certmgr.interfaces import HostBundles

    verify = VerifyTarget("127.0.0.1", site.peer.port)
    request = DeployRequest(HOST, (first,), verify, (HostBundles(HOST, (first,), verify),
                                                     HostBundles(OTHER, (second,), verify)))
    return deploy_and_verify(site.deployer(**extra), request, make_probe_fn(HOST, trust_file=site.trust, timeout=5),
                             attempts=10, delay=0.3)


def served_for(site: Site, servername: str) -> str | None:
    r = probe("127.0.0.1", site.peer.port, servername=servername, trust_file=site.trust, timeout=5)
    return r.certificate.sha256 if r.certificate else None


def test_sni_without_manage_config_says_what_main_cf_must_contain(site: Site) -> None:
    first, second = site.ca.leaf(HOST), site.ca.leaf(OTHER)
    outcome = two_hosts(site, first, second)
    assert not outcome.ok
    reason = outcome.reason or ""
    assert f"{site.peer.config_dir}/main.cf must say: tls_server_sni_maps = hash:{site.cert_dir}/sni" in reason
    assert "nothing was changed" in reason, reason
    assert not (site.cert_dir / f"{OTHER}.rsa.pem").exists() and not (site.cert_dir / "sni").exists()
    # the admin adds the line (the map is built by the deployment): then it deploys
    from tests.peers.postfix import postconf

    postconf(site.peer, f"tls_server_sni_maps = hash:{site.cert_dir}/sni")
    (site.cert_dir / "sni").write_text("")
    subprocess.run(["postmap", f"hash:{site.cert_dir}/sni"], check=True)
    outcome = two_hosts(site, first, second)
    assert outcome.ok, outcome.reason
    assert served_for(site, OTHER) == second.sha256 and served_for(site, "") == first.sha256


def test_back_to_one_hostname_drops_the_map(site: Site) -> None:
    outcome = two_hosts(site, site.ca.leaf(HOST), site.ca.leaf(OTHER), manage_config=True)
    assert outcome.ok, outcome.reason
    assert "tls_server_sni_maps" in (site.peer.config_dir / "main.cf").read_text()
    # OTHER gets a [deploy] table of its own: the map, holding copies of the old files, must go
    new = site.ca.leaf(HOST)
    outcome = site.deploy([new], manage_config=True)
    assert outcome.ok, outcome.reason
    assert "tls_server_sni_maps" not in (site.peer.config_dir / "main.cf").read_text()
    assert served_for(site, HOST) == new.sha256


def test_restored_config_naming_a_missing_file_is_said_and_not_reloaded(site: Site, tmp_path: Path) -> None:
    # main.cf names a chain file somebody removed (the running Postfix still holds it): a rollback
    # brings that main.cf back, and says so instead of reloading Postfix into a broken TLS setup
    chain = site.cert_dir / f"{HOST}.rsa.pem"
    chain.rename(tmp_path / "aside.pem")
    outcome = site.deploy([site.ca.leaf(HOST)], cert_dir=str(tmp_path / "managed"), manage_config=True,
                          reload_command=["false"])
    assert not outcome.ok
    assert f"the postfix configuration names {chain}, which does not exist" in (outcome.reason or ""), outcome.reason
    assert "by hand" in (outcome.reason or "")
    assert f"smtpd_tls_chain_files = {chain}" in (site.peer.config_dir / "main.cf").read_text()


def test_manage_config_keeps_main_cf_mode_and_owner(site: Site, tmp_path: Path) -> None:
    # `postconf -e` writes a new main.cf (root:root 0644): a successful deployment puts its owner back
    import grp
    import os

    main_cf = site.peer.config_dir / "main.cf"
    os.chown(main_cf, 0, grp.getgrnam("postfix").gr_gid)
    main_cf.chmod(0o640)
    outcome = site.deploy([site.ca.leaf(HOST)], cert_dir=str(tmp_path / "managed"), manage_config=True)
    assert outcome.ok, outcome.reason
    st = main_cf.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 0, grp.getgrnam("postfix").gr_gid)
