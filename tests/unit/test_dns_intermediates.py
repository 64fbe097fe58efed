"""``dane.intermediates``: PEM files of CA certificates, only with ``2 1 1``; errors name the key.
The hierarchy check: an issuer no published ``2 1 1`` record pins is a warning."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certmgr.dns.rollover import Rollover, begin, hierarchy_warning, ta_record
from certmgr.dns.settings import DaneSettings, parse_dane
from certmgr.errors import ConfigError
from tests.peers.testca import TestCA


def dane(tmp_path: Path, usage: str, files: list[str]) -> DaneSettings | None:
    return parse_dane({"publish": "corp", "usage": usage, "intermediates": files}, table="mta #1",
                      dns_tables={"corp"})


def test_listed_intermediates_are_read(tmp_path: Path) -> None:
    pem = tmp_path / "le.pem"
    pem.write_bytes(TestCA().inter.public_bytes(Encoding.PEM))
    settings = dane(tmp_path, "3 1 1 + 2 1 1", [str(pem)])
    assert settings is not None and settings.intermediates == (str(pem),)


@pytest.mark.parametrize(("usage", "content", "message"), [
    ("3 1 1", "inter", 'only means something with usage "2 1 1"'),
    ("2 1 1", "leaf", "is not a CA certificate"),
    ("2 1 1", "junk", "holds no PEM certificate"),
    ("2 1 1", None, "cannot read"),
])
def test_bad_intermediates_name_the_key(tmp_path: Path, usage: str, content: str | None, message: str) -> None:
    ca = TestCA()
    pem = tmp_path / "x.pem"
    if content == "inter":
        pem.write_bytes(ca.inter.public_bytes(Encoding.PEM))
    elif content == "leaf":
        pem.write_bytes(ca.leaf("mx1.example.com").cert_pem)
    elif content == "junk":
        pem.write_text("not a certificate\n")
    with pytest.raises(ConfigError) as e:
        dane(tmp_path, usage, [str(pem)])
    assert e.value.key == "dane.intermediates" and message in e.value.message


def test_an_issuer_no_record_pins_is_a_hierarchy_warning_and_a_pinned_one_keeps_the_clock() -> None:
    ca, other = TestCA(), TestCA("other")
    leaf = x509.load_pem_x509_certificate(ca.leaf("mx1.example.com").cert_pem)
    st = Rollover("mx1.example.com", port=25, ttl=60, trust_anchors=(ta_record(other.inter),))
    warning = hierarchy_warning([leaf, ca.inter], st)
    assert warning is not None and "no published 2 1 1 record pins" in warning
    pinned = Rollover("mx1.example.com", port=25, ttl=60, trust_anchors=(ta_record(ca.inter),),
                      next=("3 1 1 aa",), visible_since="2026-01-01T00:00:00+00:00")
    assert hierarchy_warning([leaf, ca.inter], pinned) is None
    now = datetime(2026, 1, 2, tzinfo=UTC)
    assert begin(pinned, ["3 1 1 aa", ta_record(ca.inter)], now).visible_since == pinned.visible_since
