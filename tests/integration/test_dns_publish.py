"""``[dns.NAME] type = "rfc2136"``: the core loads the provider through the ``certmgr.dns``
entry points and publishes, replaces and removes RRsets in a real BIND's signed zone,
then reads them back from each authoritative server (a primary and a lagging secondary)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from certmgr.dns.publisher import DnsPublisher, canonical, load_publisher, txt, visible_everywhere
from certmgr.errors import ConfigError, PermanentError, RetryableError
from certmgr.interfaces import ProviderEnv
from tests.peers.named import Named, SecondaryNamed, running_named
from tests.peers.util import free_port

pytestmark = pytest.mark.integration

TLSA_A = "3 1 1 " + "AB" * 32
TLSA_B = "3 1 1 " + "cd" * 32


@dataclass
class Zone:
    primary: Named
    secondary: SecondaryNamed
    publisher: DnsPublisher


def _table(primary: Named, *servers: Named, **extra: Any) -> dict[str, Any]:
    return {
        "type": "rfc2136",
        "server": primary.server,
        "zone": primary.zone,
        "tsig_key_file": str(primary.key_file),
        "ttl": 60,
        "nameservers": [s.server for s in servers],
        **extra,
    }


def _load(table: dict[str, Any], tmp: Path) -> DnsPublisher:
    return load_publisher("corp", table, ProviderEnv(config_dir=tmp, state_dir=tmp), base_dir=tmp)


@pytest.fixture(scope="module")
def zone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zone]:
    base = tmp_path_factory.mktemp("dns-publish")
    with running_named(base / "primary", dnssec=True) as primary:
        secondary = SecondaryNamed(base / "secondary", primary)
        secondary.start()
        try:
            yield Zone(primary, secondary, _load(_table(primary, primary, secondary), base))
        finally:
            secondary.stop()


def test_publish_replace_remove_on_the_primary(zone: Zone) -> None:
    owner = "_25._tcp.mx1.example.test"
    pub = zone.publisher
    pub.replace(owner, "TLSA", [TLSA_A])
    pub.add(owner, "TLSA", [TLSA_B])
    seen = pub.query(pub.authoritative_servers()[0], owner, "TLSA")
    assert seen.values == {canonical("TLSA", TLSA_A), canonical("TLSA", TLSA_B)} and seen.ttl == 60
    pub.remove(owner, "TLSA", [TLSA_A])
    assert zone.primary.query("TLSA", owner) == [canonical("TLSA", TLSA_B)]
    pub.replace(owner, "TLSA", [TLSA_A], ttl=120)
    assert pub.query(pub.authoritative_servers()[0], owner, "TLSA").ttl == 120
    pub.remove(owner, "TLSA")
    assert zone.primary.query("TLSA", owner) == []


def test_txt_values_round_trip(zone: Zone) -> None:
    pub = zone.publisher
    pub.replace("_mta-sts.example.test", "TXT", [txt("v=STSv1; id=20261130T0400")])
    assert zone.primary.txt("_mta-sts.example.test") == ["v=STSv1; id=20261130T0400"]


def test_a_lagging_secondary_is_reported_until_it_catches_up(zone: Zone) -> None:
    owner = "_25._tcp.mx2.example.test"
    pub = zone.publisher
    zone.secondary.sync()
    pub.replace(owner, "TLSA", [TLSA_B])
    lagging = visible_everywhere(pub, owner, "TLSA", [TLSA_B])
    assert [s.server for s in lagging] == [zone.secondary.server]
    zone.secondary.sync()
    assert visible_everywhere(pub, owner, "TLSA", [TLSA_B]) == []


def test_a_server_that_does_not_answer_counts_as_lagging(zone: Zone, tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"
    pub = _load({**_table(zone.primary, zone.primary), "nameservers": [zone.primary.server, dead],
                 "timeout": 0.5}, tmp_path)
    pub.replace("_25._tcp.mx3.example.test", "TLSA", [TLSA_A])
    lagging = visible_everywhere(pub, "_25._tcp.mx3.example.test", "TLSA", [TLSA_A])
    assert [s.server for s in lagging] == [dead] and lagging[0].error


def test_refusals_are_permanent_and_unreachable_is_retryable(zone: Zone, tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="refused with REFUSED"):
        zone.publisher.replace("www.example.test", "CNAME", ["mx1.example.test."])  # not in update-policy
    with pytest.raises(PermanentError, match="not inside zone"):
        zone.publisher.replace("_25._tcp.mx.example.org", "TLSA", [TLSA_A])
    down = _load({**_table(zone.primary, zone.primary), "server": f"127.0.0.1:{free_port()}", "timeout": 1},
                 tmp_path)
    with pytest.raises(RetryableError, match=r"dns\.corp \(rfc2136"):
        down.replace("_25._tcp.mx1.example.test", "TLSA", [TLSA_A])


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [
        ({"type": "route53"}, "type", "unknown dns type 'route53'"),
        ({"type": None}, "type", "is required"),
        ({"tsig_key_file": None, "tsig_secret": "c2VjcmV0"}, "tsig_secret", "not accepted inline"),
        ({"tsig_key_file": None}, "tsig_key_file", "is required"),
        ({"zone": None}, "zone", "is required"),
        ({"ttl": 0}, "ttl", "at least 1|>= 1|must be"),
        ({"server": "ns1:99999"}, "server", "invalid port"),
        ({"colour": "blue"}, "colour", "unknown"),
    ],
)
def test_bad_tables_name_the_key(zone: Zone, tmp_path: Path, change: dict[str, Any], key: str,
                                 message: str) -> None:
    table = {k: v for k, v in {**_table(zone.primary, zone.primary), **change}.items() if v is not None}
    with pytest.raises(ConfigError, match=message) as e:
        _load(table, tmp_path)
    assert e.value.table == "dns.corp" and e.value.key == key and e.value.exit_code == 2
