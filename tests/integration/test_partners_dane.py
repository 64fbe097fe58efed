"""DANE for partners: TLSA records count only when a validating resolver sets the AD bit.

The partner zone is signed by BIND (dnssec-policy default); a validating resolver with
the zone's KSK as trust anchor answers the probe; the same records read from the
authoritative server directly (no AD bit) are not used, as a sender would not use them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography import x509

from certmgr.config.model import PartnerSpec
from certmgr.partners.assess import to_json
from certmgr.partners.check import CheckOptions, check_partners
from certmgr.probe.dane import record_for
from tests.peers.named import ValidatingResolver
from tests.peers.partners import PartnerWorld, partner_world
from tests.peers.postfix import wait_until

pytestmark = pytest.mark.integration


@dataclass
class Dane:
    world: PartnerWorld
    resolver: ValidatingResolver

    def check(self, name: str, require: str, *, validating: bool = True) -> dict[str, Any]:
        where = (self.resolver.address, 53) if validating else self.world.resolver
        [facts] = check_partners([PartnerSpec(self.world.domain(name), require)],
                                 CheckOptions(resolver=where, trust_file=self.world.trust_file, timeout=5))
        return to_json(facts, datetime.now(UTC))


@pytest.fixture(scope="module")
def dane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dane]:
    root = tmp_path_factory.mktemp("dane")
    with partner_world(root / "partners", defects=("good", "selfsigned"), dnssec=True) as world:
        for defect in ("good", "selfsigned"):
            chain = world.mtas[defect].chain_files[0].read_bytes()
            leaf = x509.load_pem_x509_certificates(chain[chain.index(b"-----BEGIN CERTIFICATE"):])[0]
            world.named.replace(f"_25._tcp.{world.mx(defect)}.", "TLSA", [str(record_for(leaf))])
        resolver = ValidatingResolver(root / "resolver", world.named)
        resolver.start()
        try:
            wait_until(lambda: bool(resolver.validated("TLSA", f"_25._tcp.{world.mx('good')}")),
                       timeout=30, what="the TLSA record signed and validated")
            yield Dane(world, resolver)
        finally:
            resolver.stop()


def test_validated_matching_tlsa_meets_dane_only(dane: Dane) -> None:
    report = dane.check("good", "dane-only")
    assert report["status"] == "ok", report["problems"]
    [mx] = report["mx"]
    assert mx["dane"]["validated"] is True and mx["dane"]["match"] is True and mx["meets_level"] is True


def test_dane_pins_a_self_signed_certificate(dane: Dane) -> None:
    # DANE-EE (3 1 1) authenticates the key itself: a self-signed certificate is fine under dane-only
    report = dane.check("selfsigned", "dane-only")
    assert report["status"] == "ok", report["problems"]


def test_records_without_the_ad_bit_are_not_used(dane: Dane) -> None:
    report = dane.check("good", "dane-only", validating=False)
    assert report["status"] == "critical"
    [mx] = report["mx"]
    assert mx["dane"]["validated"] is False and mx["dane"]["tlsa"]
    assert report["problems"] == [
        f"{dane.world.mx('good')} ({dane.world.mtas['good'].address}) has no usable DANE TLSA record at "
        f"_25._tcp.{dane.world.mx('good')} (its TLSA records are not DNSSEC-validated): mail to "
        f"{dane.world.domain('good')} will be deferred under 'dane-only'"]


def test_a_tlsa_record_that_does_not_match_fails(dane: Dane) -> None:
    name = f"_25._tcp.{dane.world.mx('good')}."
    before = dane.world.named.query("TLSA", name)
    dane.world.named.replace(name, "TLSA", ["3 1 1 " + "ab" * 32])
    try:
        wait_until(lambda: any("abab" in r.lower().replace(" ", "")
                               for r in dane.resolver.validated("TLSA", name)), timeout=30, what="new TLSA validated")
        report = dane.check("good", "dane")
        assert report["status"] == "critical"
        assert report["problems"][0].endswith(f"presents a certificate that matches none of its TLSA records at "
                                              f"_25._tcp.{dane.world.mx('good')}: mail to {dane.world.domain('good')} "
                                              "will be deferred under 'dane'")
    finally:
        dane.world.named.replace(name, "TLSA", before)
