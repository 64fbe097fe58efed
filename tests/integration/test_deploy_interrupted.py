"""A deployment cut short between writing the new files and verifying them (a crash, SIGKILL)
and then run again keeps the backup of the files from before it: a rollback puts back what
was in place before the interrupted run, never the unverified files it left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_deploy_postfix import HOST, Site
from tests.integration.test_deploy_postfix import site as site
from tests.peers.postfix import chain_file_pem, wait_until

pytestmark = pytest.mark.integration


def files(site: Site) -> tuple[Path, Path, Path]:
    path = site.cert_dir / f"{HOST}.rsa.pem"
    return path, Path(f"{path}.certmgr-prev"), Path(f"{path}.certmgr-inflight")


def test_a_rollback_after_an_interrupted_deployment_puts_back_the_file_from_before_it(site: Site) -> None:
    path, backup, marker = files(site)
    before = path.read_bytes()
    unverified = site.ca.leaf(HOST)
    site.deployer().install(site.request([unverified]))  # written and reloaded, then cut short
    assert path.read_bytes() != before and marker.exists()

    outcome = site.deploy([site.ca.leaf(HOST)], reload_command=["false"])
    assert not outcome.ok and outcome.rolled_back, outcome
    assert path.read_bytes() == before == chain_file_pem(site.old[0]), "the file from before the cut is back"
    assert backup.read_bytes() == before and not marker.exists()
    site.peer.reload()
    wait_until(lambda: site.served() == site.old[0].sha256, what="the certificate from before served again")


def test_a_verified_deployment_settles_and_the_next_backup_is_of_it(site: Site) -> None:
    path, backup, marker = files(site)
    site.deployer().install(site.request([site.ca.leaf(HOST)]))  # cut short
    new = site.ca.leaf(HOST)
    outcome = site.deploy([new])
    assert outcome.ok, outcome.reason
    assert not marker.exists(), "a verified deployment leaves no in-flight marker"
    assert backup.read_bytes() == chain_file_pem(site.old[0])
    # the next deployment backs up the verified file, and a failure puts it back
    outcome = site.deploy([site.ca.leaf(HOST)], reload_command=["false"])
    assert outcome.rolled_back and path.read_bytes() == new.key_pem + new.cert_pem + new.chain_pem
    assert not marker.exists()
