"""`certmgr partners` probes a partner's IPv6 MX address: a real Postfix listening on a
unique-local address of ``lo``, found through the AAAA record of a real BIND zone, judged like
any other address — first meeting 'verify', then not, once it stops offering STARTTLS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Cli
from tests.peers.partners import PartnerWorld, loopback_ipv6, partner_world
from tests.peers.postfix import postconf, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PartnerWorld]:
    with loopback_ipv6() as address, partner_world(tmp_path_factory.mktemp("partners-v6"), defects=("good",),
                                                   ipv6=address) as w:
        yield w


def test_partners_probes_the_ipv6_address_of_an_mx(tmp_path: Path, world: PartnerWorld) -> None:
    config = tmp_path / "certmgr.toml"
    config.write_text(f"""
[certmgr]
state_dir = "{tmp_path / 'state'}"
trust = "{world.trust_file}"
resolver = "{world.named.server}"

[[partner]]
domain = "{world.domain('v6')}"
require = "verify"
""")
    cli = Cli(config)
    mta = world.mtas["v6"]
    [report] = json.loads(cli("partners", "--json").stdout)
    assert (report["status"], report["problems"]) == ("ok", [])
    [mx] = report["mx"]
    assert (mx["host"], mx["address"], mx["starttls"], mx["meets_level"]) == (world.mx("v6"), mta.address, True,
                                                                               True)
    assert mx["tls_version"] in ("TLSv1.2", "TLSv1.3") and mx["certificate"]["name_match"] is True

    postconf(mta, "smtpd_tls_security_level = none")
    mta.reload()

    def broken() -> bool:
        status: str = json.loads(cli("partners", "--json", check=None).stdout)[0]["status"]
        return status == "critical"

    wait_until(broken, what="the IPv6 MX without STARTTLS", timeout=60)
    r = cli("partners", "--json", check=2)
    [report] = json.loads(r.stdout)
    assert report["problems"] == [f"{world.mx('v6')} ({mta.address}) does not offer STARTTLS: mail to "
                                  f"{world.domain('v6')} will be deferred under 'verify'"]
    assert report["mx"][0]["meets_level"] is False
