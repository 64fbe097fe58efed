"""The partner policy map is settled once installed: a later change that fails (the reload
fails) puts back the map that was enforced, not the state from before the first install, and
no in-flight marker is left beside the map or main.cf (a real Postfix, real partner MTAs)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Cli
from tests.peers.partners import PartnerWorld, partner_world
from tests.peers.postfix import PostfixPeer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PartnerWorld]:
    with partner_world(tmp_path_factory.mktemp("partners-rollback"), defects=("good",)) as w:
        yield w


def _config(tmp_path: Path, world: PartnerWorld, out: PostfixPeer, cert_dir: Path, require: str,
            reload: str = "") -> str:
    return world.outbound_config(tmp_path / "state", out.config_dir, cert_dir) + f"""{reload}

[[partner]]
domain = "{world.domain('good')}"
require = "{require}"
deploy = ["out"]
"""


def test_a_failed_policy_change_puts_back_the_enforced_map(tmp_path: Path, world: PartnerWorld) -> None:
    out = PostfixPeer(tmp_path / "out", hostname="out.sender.test", starttls=False)
    out.start()
    try:
        cert_dir = tmp_path / "certmgr-out"
        cert_dir.mkdir()
        config = tmp_path / "certmgr.toml"
        config.write_text(_config(tmp_path, world, out, cert_dir, "verify"))
        cli = Cli(config)
        [row] = json.loads(cli("deploy", "--json").stdout)
        assert row["enforced"] == [world.domain("good")]
        policy = cert_dir / "tls_policy"
        enforced = policy.read_bytes()
        assert f"{world.domain('good')} verify".encode() in enforced
        markers = sorted(p.name for p in [*cert_dir.iterdir(), *out.config_dir.iterdir()]
                         if p.name.endswith(".certmgr-inflight"))
        assert markers == []
        # a change whose reload fails is undone: the map enforced before it is back
        config.write_text(_config(tmp_path, world, out, cert_dir, "encrypt", 'reload_command = ["/bin/false"]'))
        [row] = json.loads(cli("deploy", "--json", check=1).stdout)
        assert row["error"] and "/bin/false" in row["error"]
        assert policy.read_bytes() == enforced
    finally:
        out.stop()
