"""ACME Renewal Information (RFC 9773): pebble 2.4 has none, so a small local HTTP
server plays a directory that offers ``renewalInfo`` and answers for one certificate."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certmgr.errors import IssuanceError
from providers.issuers.acme_net import ari_cert_id
from tests.peers.pebble import AccountStore, make_issuer

pytestmark = pytest.mark.integration

START = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
END = START + dt.timedelta(days=2)


def make_cert() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mx.example.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0x1234)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=90))
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def ari_server() -> Iterator[tuple[str, dict[str, Any]]]:
    state: dict[str, Any] = {"known": None, "paths": []}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            base = f"http://{self.headers['Host']}"
            state["paths"].append(self.path)
            if self.path == "/dir":
                body: dict[str, Any] = {
                    "newNonce": base + "/nonce",
                    "newAccount": base + "/acct",
                    "newOrder": base + "/order",
                    "revokeCert": base + "/revoke",
                    "renewalInfo": base + "/ari",
                    "meta": {},
                }
                extra = {}
            elif self.path == f"/ari/{state['known']}":
                body = {
                    "suggestedWindow": {"start": START.isoformat(), "end": END.isoformat()},
                    "explanationURL": "https://ca.example.test/why",
                }
                extra = {"Retry-After": "21600"}
            else:
                self.send_response(404)
                self.end_headers()
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/dir", state
    finally:
        server.shutdown()
        server.server_close()


def test_renewal_window_from_renewal_info(ari_server: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    url, state = ari_server
    cert = make_cert()
    state["known"] = ari_cert_id(cert)
    iss = make_issuer({"directory": url, "challenge": {"type": "http-01", "port": 1}}, tmp_path)
    window = iss.renewal_info(cert, AccountStore().context("mx.example.test"))
    assert window is not None
    assert window.start == START and window.end == END
    assert window.explanation_url == "https://ca.example.test/why"
    assert window.retry_after is not None
    wait = (window.retry_after - dt.datetime.now(dt.UTC)).total_seconds()
    assert 21500 < wait <= 21600
    assert f"/ari/{state['known']}" in state["paths"]


def test_unknown_certificate_is_retryable(ari_server: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    url, _ = ari_server
    iss = make_issuer({"directory": url, "challenge": {"type": "http-01", "port": 1}}, tmp_path)
    with pytest.raises(IssuanceError) as err:
        iss.renewal_info(make_cert(), AccountStore().context("mx.example.test"))
    assert "127.0.0.1" in str(err.value) and "renewal information" in str(err.value)
