"""External account binding against a pebble that requires it."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certmgr.errors import PermanentError
from certmgr.interfaces import CertRequest
from tests.peers.pebble import AccountStore, Pebble, make_csr, make_issuer, running_pebble

pytestmark = pytest.mark.integration

KID = "kid-certmgr"
HMAC = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    with running_pebble(tmp_path_factory.mktemp("pebble-eab"), eab_keys={KID: HMAC}) as p:
        yield p


def table(p: Pebble, **extra: Any) -> dict[str, Any]:
    return {
        "directory": p.directory_url,
        "ca_bundle": str(p.ca_bundle),
        "timeout": 60,
        "challenge": {"type": "http-01", "address": "127.0.0.1", "port": p.http_port},
        **extra,
    }


def req(prefix: str) -> CertRequest:
    names = [f"{prefix}.example.test"]
    return CertRequest(
        hostname=names[0], names=tuple(names), key_type="ecdsa-p256", csr_pem=make_csr(names)[1]
    )


def test_eab_with_right_key_issues(pebble: Pebble, tmp_path: Path) -> None:
    keyfile = tmp_path / "eab.key"
    keyfile.write_text(HMAC + "\n")
    iss = make_issuer(table(pebble, eab_kid=KID, eab_hmac_key_file=str(keyfile)), tmp_path)
    store = AccountStore()
    r = req("eab-ok")
    try:
        issued = iss.issue(r, store.context(r.hostname))
    finally:
        iss.close()
    assert b"BEGIN CERTIFICATE" in issued.fullchain_pem
    assert store.saves == 1


def test_eab_from_environment(pebble: Pebble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTMGR_TEST_EAB", HMAC)
    iss = make_issuer(table(pebble, eab_kid=KID, eab_hmac_key_env="CERTMGR_TEST_EAB"), tmp_path)
    r = req("eab-env")
    try:
        assert b"BEGIN CERTIFICATE" in iss.issue(r, AccountStore().context(r.hostname)).fullchain_pem
    finally:
        iss.close()


def test_missing_eab_is_permanent_and_names_the_keys(pebble: Pebble, tmp_path: Path) -> None:
    iss = make_issuer(table(pebble), tmp_path)
    r = req("eab-missing")
    store = AccountStore()
    with pytest.raises(PermanentError) as err:
        iss.issue(r, store.context(r.hostname))
    iss.close()
    assert "eab_kid" in str(err.value) and "eab_hmac_key_file" in str(err.value)
    assert store.saves == 0


def test_wrong_eab_key_is_permanent(pebble: Pebble, tmp_path: Path) -> None:
    keyfile = tmp_path / "eab.key"
    keyfile.write_text(base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="))
    iss = make_issuer(table(pebble, eab_kid=KID, eab_hmac_key_file=str(keyfile)), tmp_path)
    r = req("eab-wrong")
    with pytest.raises(PermanentError) as err:
        iss.issue(r, AccountStore().context(r.hostname))
    iss.close()
    print(err.value)
    assert "127.0.0.1" in str(err.value) and "eab_hmac_key_file" in str(err.value)
