"""`certmgr validate` warns about an MTA with ``dane.publish`` whose name a wildcard of its zone
answers: publishing its TLSA records would make the name an empty non-terminal and its address
lookup would fail (shown here on the real BIND before and after such a publication)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import Cli
from tests.peers.named import running_named

pytestmark = pytest.mark.integration


def test_validate_warns_when_a_dane_mta_sits_under_a_wildcard(tmp_path: Path) -> None:
    with running_named(tmp_path / "named") as named:
        named.replace("*", "A", ["127.0.0.9"])
        named.replace("mx2", "A", ["127.0.0.2"])
        mtas = "".join(f'\n[[mta]]\nhostname = "{h}.example.test"\nissuer = "ca"\n'
                       'dane = { publish = "corp", usage = "3 1 1" }\n' for h in ("mx1", "mx2"))
        path = tmp_path / "certmgr.toml"
        path.write_text(f'[certmgr]\nstate_dir = "{tmp_path / "state"}"\n\n[issuer.ca]\ntype = "manual"\n\n'
                        f"{named.zone_toml(ttl=60)}{mtas}")
        r = Cli(path)("validate")
        assert "mx1.example.test dane.publish: mx1.example.test has no A record of its own: the wildcard " \
               "*.example.test answers for it" in r.stderr, r.stderr
        assert "mx2.example.test dane" not in r.stderr, r.stderr
        # what the warning is about: once the TLSA record is there, mx1 has no address any more
        assert named.query("A", "mx1.example.test") == ["127.0.0.9"]
        named.replace("_25._tcp.mx1", "TLSA", ["3 1 1 " + "ab" * 32])
        assert named.query("A", "mx1.example.test") == []
        assert "mx1.example.test has no A record of its own" in Cli(path)("validate").stderr
