"""Partner probes against real partner MTAs: one private Postfix per defect on its own
127.x address, port 25, and a real BIND zone with their MX records."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from certmgr.config.model import PartnerSpec
from certmgr.partners.assess import to_json, worst
from certmgr.partners.check import CheckOptions, check_partners
from certmgr.probe.assess import EXIT_CODES
from tests.peers.named import posttls_finger
from tests.peers.partners import PartnerWorld, finger_meets, partner_world
from tests.peers.util import random_loopback_address

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PartnerWorld]:
    # DNS on port 53 of an address of its own, so posttls-finger can resolve through it too
    with partner_world(tmp_path_factory.mktemp("partners"), dns_address=random_loopback_address(53)) as w:
        yield w


def _check(world: PartnerWorld, *specs: PartnerSpec) -> list[dict[str, Any]]:
    facts = check_partners(specs, CheckOptions(resolver=world.resolver, trust_file=world.trust_file, timeout=5))
    now = datetime.now(UTC)
    return [to_json(f, now) for f in facts]


# domain, require, status, one sentence expected among the problems (formatted with the MX host)
CASES = [
    ("good", "verify", "ok", None),
    ("good", "secure", "ok", None),  # mx.good.<domain> is under the domain (Postfix "dot-nexthop")
    ("nostarttls", "encrypt", "critical", "{mx} ({addr}) does not offer STARTTLS: mail to {domain} will be "
                                          "deferred under 'encrypt'"),
    ("expired", "verify", "critical", "{mx} ({addr}) presents a certificate that expired on "),
    ("expired", "encrypt", "ok", None),
    ("wrongname", "verify", "critical", "{mx} ({addr}) presents a certificate for mx.elsewhere.invalid, which "
                                        "matches none of {mx}: mail to {domain} will be deferred under 'verify'"),
    ("wrongname", "secure", "critical", "{mx} ({addr}) presents a certificate for mx.elsewhere.invalid, which "
                                        "matches none of {domain}, .{domain}: mail to {domain} will be deferred "
                                        "under 'secure'"),
    ("selfsigned", "verify", "critical", "{mx} ({addr}) presents a self-signed certificate: mail to {domain} "
                                         "will be deferred under 'verify'"),
    ("selfsigned", "encrypt", "ok", None),
    ("tls10", "encrypt", "warning", "{mx} ({addr}) negotiates only TLSv1, deprecated since RFC 8996: mail to "
                                    "{domain} is encrypted, but weakly; ask the partner for TLS 1.2 or later"),
    ("tls10", "verify", "critical", "{mx} ({addr}) negotiates only TLSv1, whose certificate signatures OpenSSL 3 "
                                    "refuses, so its certificate cannot be verified: mail to {domain} will be "
                                    "deferred under 'verify'"),
    ("nullmx", "verify", "critical", "{domain} publishes a null MX: this domain accepts no mail"),
    ("missing", "verify", "critical", "{domain} does not exist in DNS (NXDOMAIN)"),
]


@pytest.mark.parametrize(("name", "require", "status", "problem"), CASES)
def test_each_defect_has_its_sentence_and_status(world: PartnerWorld, name: str, require: str, status: str,
                                                 problem: str | None) -> None:
    [report] = _check(world, PartnerSpec(world.domain(name), require=require))
    assert report["status"] == status, report["problems"]
    assert EXIT_CODES[report["status"]] == {"ok": 0, "warning": 1, "critical": 2}[status]
    if problem is None:
        assert report["problems"] == []
        assert report["mx"] and all(m["meets_level"] for m in report["mx"])
        return
    addr = world.mtas[name].address if name in world.mtas else ""
    expected = problem.format(mx=world.mx(name), addr=addr, domain=world.domain(name))
    assert any(p.startswith(expected) for p in report["problems"]), report["problems"]
    assert len(report["problems"]) == 1, report["problems"]


def test_several_mx_one_without_starttls(world: PartnerWorld) -> None:
    [report] = _check(world, PartnerSpec(world.domain("multi")))
    assert report["status"] == "critical"
    assert [(m["host"], m["preference"], m["address"], m["starttls"], m["meets_level"]) for m in report["mx"]] == [
        (world.mx("good"), 10, world.mtas["good"].address, True, True),
        (world.mx("nostarttls"), 20, world.mtas["nostarttls"].address, False, False),
    ]
    assert report["problems"] == [
        f"{world.mx('nostarttls')} ({world.mtas['nostarttls'].address}) does not offer STARTTLS: mail to "
        f"{world.domain('multi')} will be deferred under 'verify'"
    ]


def test_no_mx_means_the_domain_itself(world: PartnerWorld) -> None:
    [report] = _check(world, PartnerSpec(world.domain("nomx")))
    assert report["status"] == "ok", report["problems"]
    [mx] = report["mx"]
    assert (mx["host"], mx["preference"], mx["address"]) == (world.domain("nomx"), 0, world.mtas["good"].address)
    assert mx["certificate"]["name_match"] is True and mx["certificate"]["chain_valid"] is True


def test_json_fields_and_match(world: PartnerWorld) -> None:
    [report] = _check(world, PartnerSpec(world.domain("wrongname"), match=("mx.elsewhere.invalid",)))
    assert report["status"] == "ok", report["problems"]
    assert set(report) >= {"domain", "require", "status", "problems", "mx", "mta_sts"}
    [mx] = report["mx"]
    assert set(mx) >= {"host", "preference", "address", "starttls", "tls_version", "certificate", "dane",
                       "meets_level"}
    assert mx["tls_version"] in ("TLSv1.2", "TLSv1.3")
    assert set(mx["certificate"]) >= {"subject_cn", "sans", "not_after", "days_left", "chain_valid", "name_match"}
    assert mx["certificate"]["subject_cn"] == "mx.elsewhere.invalid"
    assert mx["dane"] == {"validated": False, "tlsa": [], "match": None}
    assert set(report["mta_sts"]) >= {"mode", "mx", "id", "problems"}


def test_several_partners_exit_with_the_worst(world: PartnerWorld) -> None:
    reports = _check(world, PartnerSpec(world.domain("good")), PartnerSpec(world.domain("selfsigned")))
    assert [r["status"] for r in reports] == ["ok", "critical"]
    assert EXIT_CODES[worst([r["status"] for r in reports])] == 2


@pytest.mark.parametrize("level", ["encrypt", "verify"])
def test_same_verdicts_as_posttls_finger(world: PartnerWorld, tmp_path: Path, level: str) -> None:
    """Postfix's own TLS client, on the same partners at the same level, agrees with every verdict."""
    ours: dict[str, bool | None] = {}
    for report in _check(world, *(PartnerSpec(world.domain(d), require=level) for d in world.mtas)):
        [mx] = report["mx"]
        ours[mx["host"]] = mx["meets_level"]
    theirs = {world.mx(d): finger_meets(
        posttls_finger(world.named, world.mx(d), level=level, trust_file=world.trust_file), level)
              for d in world.mtas}
    assert ours == theirs
    # and the cases differ between the levels, so the comparison means something
    assert sum(theirs.values()) == {"encrypt": 5, "verify": 1}[level], theirs
