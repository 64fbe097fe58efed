"""ACME issuer config validation, the ARI certificate id and error mapping (no network)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import requests
from acme import messages
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certmgr.errors import ConfigError, IssuanceError, PermanentError, RateLimitedError
from providers.issuers.acme import AcmeIssuer
from providers.issuers.acme_net import (
    BAD_NONCE_RETRIES,
    Poller,
    RetryingNetwork,
    ari_cert_id,
    map_acme_error,
    retry_after_seconds,
)
from tests.peers.pebble import make_issuer

BASE = {"directory": "https://acme.example.test/dir", "challenge": {"type": "http-01", "port": 8080}}


def build(tmp_path: Path, **extra: Any) -> AcmeIssuer:
    table = {**BASE, **extra}
    return make_issuer(table, tmp_path)  # type: ignore[no-any-return]


def test_minimal_config(tmp_path: Path) -> None:
    iss = build(tmp_path, contact=["mailto:pm@example.test"])
    assert iss.directory_url == BASE["directory"] and iss.timeout == 300.0
    assert iss.solver.challenge_type == "http-01"
    assert AcmeIssuer.automatic is True and AcmeIssuer.description


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"colour": "blue"}, "colour"),
        ({"eab_hmac_key": "abc", "eab_kid": "k"}, "eab_hmac_key"),
        ({"eab_kid": "k"}, "eab_hmac_key_file"),
        ({"contact": ["pm@example.test"]}, "contact"),
        ({"directory": "ftp://x"}, "directory"),
        ({"timeout": 0}, "timeout"),
        ({"ca_bundle": "/nonexistent/ca.pem"}, "ca_bundle"),
    ],
)
def test_bad_config(tmp_path: Path, extra: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        build(tmp_path, **extra)
    assert err.value.key == key


def test_unknown_key_inside_challenge_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        build(tmp_path, challenge={"type": "http-01", "prot": 80})
    assert err.value.key == "prot"


def test_eab_secret_from_file(tmp_path: Path) -> None:
    (tmp_path / "eab").write_text("c2VjcmV0\n")
    iss = build(tmp_path, eab_kid="kid", eab_hmac_key_file="eab")
    assert iss.eab_hmac_key == "c2VjcmV0"


def _cert(serial: int) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    now = dt.datetime.now(dt.UTC)
    from cryptography.hazmat.primitives import serialization

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.AuthorityKeyIdentifier(
                b"\x69\x88\x5b\x6b\x87\x46\x40\x41\xe1\xb3\x7b\x84\x7b\xa0\xae\x2c\xde\x01\xc8\xd4",
                None,
                None,
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def test_ari_cert_id_matches_rfc_example() -> None:
    # RFC 9773 section 4.1 example
    assert ari_cert_id(_cert(0x0087654321)) == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"


def _response(status: int, headers: dict[str, str]) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r.headers.update(headers)
    return r


def test_error_mapping() -> None:
    rl = map_acme_error(
        messages.Error.with_code("rateLimited", detail="too many"),
        host="ca",
        hostname="mx",
        what="creating the order",
        response=_response(429, {"Retry-After": "120"}),
    )
    assert isinstance(rl, RateLimitedError) and rl.retry_after == 120 and "ca" in str(rl)
    perm = map_acme_error(
        messages.Error.with_code("rejectedIdentifier", detail="no"), host="ca", hostname="mx", what="x"
    )
    assert isinstance(perm, PermanentError)
    caa = map_acme_error(
        messages.Error.with_code("caa", detail="CAA forbids"), host="ca", hostname="mx", what="x"
    )
    assert isinstance(caa, PermanentError)
    srv = map_acme_error(
        messages.Error.with_code("serverInternal", detail="oops"),
        host="ca",
        hostname="mx",
        what="x",
        response=_response(503, {"Retry-After": "7"}),
    )
    assert isinstance(srv, IssuanceError) and srv.retry_after == 7
    conn = map_acme_error(requests.ConnectionError("refused"), host="ca", hostname="mx", what="x")
    assert isinstance(conn, IssuanceError) and "cannot connect" in str(conn)


def test_retry_after_forms() -> None:
    assert retry_after_seconds(_response(200, {"Retry-After": "3"})) == 3
    assert retry_after_seconds(_response(200, {})) is None
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    v = retry_after_seconds(_response(200, {"Retry-After": future}))
    assert v is not None and 50 < v <= 60


class _Clock:
    """monotonic() and sleep() on a clock that only moves when slept on."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 4))
        self.now += seconds


def test_poller_grows_gently_and_stops_at_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    import providers.issuers.acme_net as acme_net

    clock = _Clock()
    monkeypatch.setattr(acme_net, "time", clock)
    p = Poller(clock.now + 0.3, first=0.05)
    n = 0
    while p.wait():
        n += 1
    # 50 ms, then 25 % more each time, the last wait cut to the deadline, never past it
    assert clock.slept == [0.05, 0.0625, 0.0781, 0.0977, 0.0117], clock.slept
    assert n == 5 and clock.now == pytest.approx(100.3)


def test_poller_honours_retry_after_but_not_past_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    import providers.issuers.acme_net as acme_net

    clock = _Clock()
    monkeypatch.setattr(acme_net, "time", clock)
    p = Poller(clock.now + 10, first=0.05)
    assert p.wait(_response(200, {"Retry-After": "3"}))
    assert p.wait(_response(200, {"Retry-After": "30"}))
    assert not p.wait()
    assert clock.slept == [3.0, 7.0]


def test_new_order_carries_replaces_and_profile() -> None:
    from providers.issuers.acme_order import NewOrderWithReplaces

    ident = messages.Identifier(typ=messages.IDENTIFIER_FQDN, value="mx.example.test")
    body = NewOrderWithReplaces(identifiers=[ident], replaces="aYhb.AIdl", profile="classic").to_json()
    assert body["replaces"] == "aYhb.AIdl" and body["profile"] == "classic"
    plain = NewOrderWithReplaces(identifiers=[ident], replaces=None, profile=None).to_json()
    assert "replaces" not in plain and "profile" not in plain


class _NonceRejectingNetwork(RetryingNetwork):
    """RetryingNetwork whose single POST is answered badNonce ``rejections`` times, then 200."""

    def __init__(self, rejections: int, code: str = "badNonce") -> None:
        super().__init__(key=None)
        self.rejections, self.code, self.calls = rejections, code, 0

    def _post_once(self, *args: Any, **kwargs: Any) -> requests.Response:
        self.calls += 1
        if self.calls <= self.rejections:
            raise messages.Error.with_code(self.code, detail="rejected")
        return _response(200, {})


def test_bad_nonce_is_retried_until_the_budget_is_spent() -> None:
    net = _NonceRejectingNetwork(BAD_NONCE_RETRIES)
    assert net.post("https://ca/x", None).status_code == 200 and net.calls == BAD_NONCE_RETRIES + 1
    net = _NonceRejectingNetwork(BAD_NONCE_RETRIES + 1)
    with pytest.raises(messages.Error, match="rejected"):
        net.post("https://ca/x", None)
    assert net.calls == BAD_NONCE_RETRIES + 1, "bounded: no hot loop against a CA that rejects every nonce"
    # at 50 % rejection one POST in a billion fails; a run of a few hundred POSTs never does
    assert 0.5 ** (BAD_NONCE_RETRIES + 1) < 1e-9


def test_other_errors_are_not_retried() -> None:
    net = _NonceRejectingNetwork(1, code="unauthorized")
    with pytest.raises(messages.Error):
        net.post("https://ca/x", None)
    assert net.calls == 1
