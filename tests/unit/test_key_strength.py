"""One key-strength rule: the config, a certificate import and the probe agree on every key."""

from __future__ import annotations

import dataclasses

import pytest

from certmgr.config.mta import parse_key_types
from certmgr.errors import ConfigError
from certmgr.pki.keytypes import KEY_TYPES, is_weak, weak_key_reason
from certmgr.probe.assess import assess

from .test_probe_assess import GOOD, GOOD_CERT, HOST, NOW

#: (algorithm, bits or curve size, weak?)
KEYS = [("rsa", 1024, True), ("rsa", 1536, True), ("rsa", 2047, True), ("rsa", 2048, False), ("rsa", 4096, False),
        ("ecdsa", 192, True), ("ecdsa", 224, True), ("ecdsa", 256, False), ("ecdsa", 384, False),
        ("dsa", 2048, True), ("dsa", 3072, True)]


def _config_refuses_as_weak(name: str) -> bool:
    def err(message: str) -> ConfigError:
        return ConfigError(message, table="mta #1", key="key")

    try:
        parse_key_types(name, err)
    except ConfigError as e:
        return "weaker than certmgr allows" in e.message
    return False


@pytest.mark.parametrize(("alg", "bits", "weak"), KEYS)
def test_config_import_and_probe_agree(alg: str, bits: int, weak: bool) -> None:
    assert is_weak(alg, bits) is weak
    # import: a weak key is refused with the reason
    assert (weak_key_reason(alg, bits) is not None) is weak
    # config: the key type written as the config would name it
    name = {"rsa": f"rsa-{bits}", "ecdsa": f"ecdsa-p{bits}", "dsa": f"dsa-{bits}"}[alg]
    assert _config_refuses_as_weak(name) is weak
    # probe: a served certificate with that key is CRITICAL for it
    served = dataclasses.replace(GOOD, certificate=dataclasses.replace(GOOD_CERT, key_alg=alg, key_bits=bits))
    status, problems = assess(served, expected_hostname=HOST, managed_sha256s=None, now=NOW)
    assert any("weak" in p for p in problems) is weak
    assert (status == "critical") is weak


def test_every_key_type_certmgr_issues_is_strong() -> None:
    assert all(not is_weak(alg, bits) and weak_key_reason(alg, bits) is None for alg, bits in KEY_TYPES.values())


def test_a_key_that_is_not_rsa_or_ecdsa_is_not_accepted_for_an_mta_but_not_called_weak() -> None:
    assert not is_weak("ed25519", 256)
    assert weak_key_reason("ed25519", 256) == (
        "the key type ed25519 is not accepted for MTA certificates (use RSA or ECDSA)")
