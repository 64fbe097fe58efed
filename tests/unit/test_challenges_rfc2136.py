"""TSIG key-file parsing and rfc2136 options validation (no DNS traffic)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from certmgr.errors import ConfigError
from certmgr.interfaces import Options, ProviderEnv
from providers.challenges.dns01 import challenge_name, parse_server
from providers.challenges.rfc2136 import Rfc2136Solver, parse_tsig_key

KEYGEN_OUTPUT = """key "certmgr-test" {
\talgorithm hmac-sha256;
\tsecret "kTJ0W2Y2rPj3XEVaGkxpsaWfhRUEJjVUUeKu+NUG3Pk=";
};
"""


def test_parses_tsig_keygen_output() -> None:
    key = parse_tsig_key(KEYGEN_OUTPUT)
    assert key.name == "certmgr-test"
    assert key.algorithm == "hmac-sha256"
    assert len(key.secret) == 32


def test_parses_unquoted_name_comments_and_one_line() -> None:
    text = '# comment\n// other\nkey acme.key. { algorithm HMAC-SHA512; secret "c2VjcmV0"; };'
    key = parse_tsig_key(text)
    assert (key.name, key.algorithm, key.secret) == ("acme.key.", "hmac-sha512", b"secret")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no `key"),
        ('key "k" { secret "c2VjcmV0"; };', "no algorithm"),
        ('key "k" { algorithm hmac-sha256; };', "no secret"),
        ('key "k" { algorithm hmac-foo; secret "c2VjcmV0"; };', "unsupported algorithm"),
        ('key "k" { algorithm hmac-sha256; secret "not base64!"; };', "not base64"),
    ],
)
def test_rejects_broken_key_files(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_tsig_key(text)


def build(table: dict[str, Any], base: Path) -> Rfc2136Solver:
    return Rfc2136Solver.from_config(
        "challenge",
        Options(table, where="issuer.x.challenge", base_dir=base),
        ProviderEnv(config_dir=base, state_dir=base),
    )


@pytest.fixture
def keyfile(tmp_path: Path) -> Path:
    p = tmp_path / "tsig.key"
    p.write_text(KEYGEN_OUTPUT)
    return p


def test_valid_config(tmp_path: Path, keyfile: Path) -> None:
    s = build(
        {
            "type": "dns-01",
            "provider": "rfc2136",
            "server": "127.0.0.1:5353",
            "tsig_key_file": "tsig.key",
            "zone": "example.test",
            "ttl": 30,
            "nameservers": ["127.0.0.1:5353", "[::1]:53"],
        },
        tmp_path,
    )
    assert s.server == ("127.0.0.1", 5353)
    assert s.zone == "example.test."
    assert s.nameservers == [("127.0.0.1", 5353), ("::1", 53)]
    assert s.ttl == 30 and s.challenge_type == "dns-01"


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"tsig_secret": "abc"}, "tsig_secret"),
        ({"secret": "abc"}, "secret"),
        ({"colour": "blue"}, "colour"),
        ({"server": "127.0.0.1:99999"}, "server"),
        ({"ttl": 0}, "ttl"),
        ({"type": "http-01"}, "type"),
        ({"tsig_key_file": "missing.key"}, "tsig_key_file"),
    ],
)
def test_bad_config(tmp_path: Path, keyfile: Path, extra: dict[str, Any], key: str) -> None:
    table = {"type": "dns-01", "provider": "rfc2136", "server": "127.0.0.1:53", "tsig_key_file": str(keyfile)}
    table.update(extra)
    with pytest.raises(ConfigError) as err:
        build(table, tmp_path)
    assert err.value.key == key


def test_challenge_name_strips_wildcard() -> None:
    assert challenge_name("*.mx.example.test") == "_acme-challenge.mx.example.test."
    assert challenge_name("mx.example.test.") == "_acme-challenge.mx.example.test."
    assert parse_server("192.0.2.53") == ("192.0.2.53", 53)


def test_a_secret_holding_two_slashes_is_not_cut_as_a_comment() -> None:
    # base64 may hold "//" (tsig-keygen writes such keys about once in a hundred)
    text = ('// made by tsig-keygen\nkey "k1" {\n\talgorithm hmac-sha256; # the default\n'
            '\tsecret "Fg3R8Gt7Xq//JOiDKrnYZjce/pl6m27UIn87o5l5eQQ=";\n};\n')
    key = parse_tsig_key(text)
    assert key.name == "k1" and key.algorithm == "hmac-sha256"
    assert key.secret == base64.b64decode("Fg3R8Gt7Xq//JOiDKrnYZjce/pl6m27UIn87o5l5eQQ=")
