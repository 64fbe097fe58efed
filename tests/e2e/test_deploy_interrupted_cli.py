"""SIGKILL of `certmgr renew` after the new files are installed and before they are verified:
the next run deploys and verifies them, and the backup beside each file is still the
certificate from before the killed run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_deploy_cli import HOST, Mta, config
from tests.e2e.test_deploy_cli import mta as mta
from tests.peers.pebble import Pebble
from tests.peers.postfix import chain_file_pem

pytestmark = pytest.mark.integration


def test_killed_between_install_and_verify_then_run_again(tmp_path: Path, pebble: Pebble, mta: Mta) -> None:
    cli = config(tmp_path, pebble, mta)
    env = {k: v for k, v in os.environ.items() if k != "CERTMGR_CONFIG"}
    env["CERTMGR_CRASH_AFTER"] = "installed"
    killed = subprocess.run([sys.executable, "-m", "certmgr", "-c", str(cli.config), "renew"],
                            capture_output=True, text=True, timeout=120, env=env)
    assert killed.returncode == -9, killed.stderr
    files = {alg: mta.cert_dir / f"{HOST}.{alg}.pem" for alg in ("rsa", "ecdsa")}
    old = dict(zip(("rsa", "ecdsa"), mta.old, strict=True))
    for alg, path in files.items():
        assert Path(f"{path}.certmgr-inflight").exists()
        assert Path(f"{path}.certmgr-prev").read_bytes() == chain_file_pem(old[alg])

    out = cli.json("renew", "--json")  # not due any more; the unverified deployment is done now
    assert any(o["action"] == "deployed" for o in out), out
    rows = cli.json("status", "--json")
    assert all(r["deployed"] and r["state"] == "verified" for r in rows), rows
    for alg, path in files.items():
        assert not Path(f"{path}.certmgr-inflight").exists()
        assert Path(f"{path}.certmgr-prev").read_bytes() == chain_file_pem(old[alg]), \
            "the backup is still the certificate from before the killed run"
        assert mta.served(alg) == next(r["sha256"] for r in rows if r["key_type"].startswith(alg))
