"""The webroot deployer (the MTA-STS web target) on this machine's file system: certificate, key
and documents as one unit, the key 0600, a failed reload or a rollback putting every file back,
a document outside the webroot refused before anything changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from certmgr.errors import ConfigError, DeployError
from certmgr.interfaces import DeployRequest, ProviderEnv, ServesDocuments, VerifyTarget
from certmgr.options import Options
from providers.deployers.webroot import WebrootDeployer
from tests.peers.testca import TestCA

HOST = "mta-sts.example.com"
POLICY = "/.well-known/mta-sts.txt"


def deployer(tmp_path: Path, reload: str = "/bin/true", **extra: object) -> WebrootDeployer:
    table = {"webroot": str(tmp_path / "www"), "cert_file": str(tmp_path / "site.crt"),
             "key_file": str(tmp_path / "site.key"), "reload": [reload], **extra}
    return WebrootDeployer.from_config("web", Options(table, where="deploy.web", base_dir=tmp_path),
                                       ProviderEnv(config_dir=tmp_path, state_dir=tmp_path))


def request(policy: bytes, path: str = POLICY) -> DeployRequest:
    return DeployRequest(HOST, (TestCA().leaf(HOST, key_type="ecdsa-p256"),), VerifyTarget(HOST, 443),
                         documents=((path, policy),))


def test_install_writes_certificate_key_and_policy_and_rollback_puts_the_old_ones_back(tmp_path: Path) -> None:
    web = deployer(tmp_path)
    assert isinstance(web, ServesDocuments)
    first, second = request(b"mode: testing\r\n"), request(b"mode: enforce\r\n")
    web.commit(web.install(first))  # verified as served (the caller fetches it over HTTPS)
    assert (tmp_path / "www/.well-known/mta-sts.txt").read_bytes() == b"mode: testing\r\n"
    assert (tmp_path / "site.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "site.crt").read_bytes() == first.bundles[0].fullchain_pem
    installed = web.install(second)
    assert (tmp_path / "www/.well-known/mta-sts.txt").read_bytes() == b"mode: enforce\r\n"
    web.rollback(installed)
    assert (tmp_path / "www/.well-known/mta-sts.txt").read_bytes() == b"mode: testing\r\n"
    assert (tmp_path / "site.key").read_bytes() == first.bundles[0].key_pem


def test_a_failed_reload_leaves_the_previous_files(tmp_path: Path) -> None:
    web = deployer(tmp_path)
    web.commit(web.install(request(b"mode: testing\r\n")))
    with pytest.raises(DeployError, match="previous files are back"):
        deployer(tmp_path, reload="/bin/false").install(request(b"mode: enforce\r\n"))
    assert (tmp_path / "www/.well-known/mta-sts.txt").read_bytes() == b"mode: testing\r\n"


def test_a_document_outside_the_webroot_is_refused_before_anything_changes(tmp_path: Path) -> None:
    with pytest.raises(DeployError, match=r"outside the webroot.*nothing was changed"):
        deployer(tmp_path).install(request(b"x", path="/../escape.txt"))
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "site.key").exists()


def test_relative_paths_are_refused_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        deployer(tmp_path, cert_file="site.crt")
    assert e.value.key == "cert_file" and e.value.table == "deploy.web"
