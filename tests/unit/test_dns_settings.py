"""The DANE-publishing and MTA-STS config contract: good values parse, bad ones name table and key."""

from __future__ import annotations

from typing import Any

import pytest

from certmgr.dns.settings import DaneSettings, parse_dane, parse_mta_sts
from certmgr.errors import ConfigError

T = "mta.mx1.example.com"


def test_dane_values() -> None:
    assert parse_dane(None, table=T, dns_tables={"corp"}) is None
    assert parse_dane(False, table=T, dns_tables={"corp"}) is None
    assert parse_dane({"publish": "corp"}, table=T, dns_tables={"corp"}) == DaneSettings("corp", ("3 1 1",))
    got = parse_dane({"publish": "corp", "usage": "3 1 1 + 2 1 1", "max_records": 12}, table=T, dns_tables={"corp"})
    assert got == DaneSettings("corp", ("3 1 1", "2 1 1"), 12)


@pytest.mark.parametrize(
    ("value", "key", "message"),
    [
        ("yes", "dane", "must be true, false"),
        ({"usage": "3 1 1"}, "dane.publish", "is required"),
        ({"publish": "other"}, "dane.publish", r"names no \[dns.other\] table \(defined: corp\)"),
        ({"publish": "corp", "usage": "3 0 1"}, "dane.usage", "usage must be"),
        ({"publish": "corp", "max_records": 40}, "dane.max_records", "from 2 to 32"),
        ({"publish": "corp", "colour": 1}, "dane.colour", "unknown key"),
    ],
)
def test_bad_dane_values_name_the_key(value: Any, key: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as e:
        parse_dane(value, table=T, dns_tables={"corp"})
    assert e.value.table == T and e.value.key == key and e.value.exit_code == 2


GOOD = {"mode": "enforce", "max_age": 604800, "dns": "corp", "web": "mtasts-web", "issuer": "letsencrypt"}


def _parse(**change: Any) -> Any:
    value = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    return parse_mta_sts("example.com", value, dns_tables={"corp"}, deploy_targets={"mtasts-web"},
                         issuers={"letsencrypt"})


def test_mta_sts_table() -> None:
    s = _parse(rua=["mailto:tlsrpt@example.com"])
    assert (s.mode, s.max_age, s.dns, s.web, s.issuer, s.rua) == (
        "enforce", 604800, "corp", "mtasts-web", "letsencrypt", ("mailto:tlsrpt@example.com",))


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [
        ({"mode": "strict"}, "mode", "must be one of"),
        ({"max_age": 600}, "max_age", "between 86400"),
        ({"max_age": "1w"}, "max_age", "whole number"),
        ({"dns": "nope"}, "dns", r"names no \[dns.nope\]"),
        ({"web": None}, "web", "is required"),
        ({"issuer": "zerossl"}, "issuer", r"names no \[issuer.zerossl\]"),
        ({"rua": ["tlsrpt@example.com"]}, "rua", "mailto: or https:"),
        ({"mx": "mx1.example.com"}, "mx", "list of strings"),
        ({"id": "1"}, "id", "unknown key"),
    ],
)
def test_bad_mta_sts_tables_name_the_key(change: dict[str, Any], key: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as e:
        _parse(**change)
    assert e.value.table == 'mta_sts."example.com"' and e.value.key == key
