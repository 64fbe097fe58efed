"""The webhook notifier against a real HTTP(S) server on loopback."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from certmgr.errors import ConfigError, NotifyError
from certmgr.interfaces import Message, Options, ProviderEnv
from certmgr.notify.cert_status import CertStatus
from certmgr.notify.renewal_messages import failure_message
from providers.notifiers.webhook import WebhookNotifier
from tests.peers.smtpd import make_ca_and_server_cert

pytestmark = pytest.mark.integration

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Hook:
    url: str
    ca_file: Path | None = None
    status: int = 200
    received: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)


def _serve(hook: Hook, tls_dir: Path | None) -> Iterator[Hook]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            hook.received.append((dict(self.headers), json.loads(body)))
            self.send_response(hook.status)
            self.end_headers()
            self.wfile.write(b"boom" if hook.status >= 400 else b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    scheme = "http"
    if tls_dir is not None:
        ca, cert, key = make_ca_and_server_cert(tls_dir)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        hook.ca_file, scheme = ca, "https"
    hook.url = f"{scheme}://localhost:{httpd.server_address[1]}/hooks/certmgr"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield hook
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def hook() -> Iterator[Hook]:
    yield from _serve(Hook(""), None)


@pytest.fixture
def https_hook(tmp_path: Path) -> Iterator[Hook]:
    yield from _serve(Hook(""), tmp_path / "tls")


def make(tmp_path: Path, **table: Any) -> WebhookNotifier:
    opts = Options(table, where="notify.hook", base_dir=tmp_path)
    return WebhookNotifier.from_config("hook", opts, ProviderEnv(config_dir=tmp_path, state_dir=tmp_path))


def message() -> Message:
    facts = CertStatus(
        hostname="mx1.example.com", names=("mx1.example.com",), key_type="ecdsa-p256", issuer="le",
        serial="0a", not_after=NOW + timedelta(days=2), days_left=2, state="failed",
        last_error="rateLimited", attempts=4, automatic=True, next_retry=None, config_path="/etc/c.toml",
    )
    return failure_message(facts, "rateLimited", 0, NOW)


def test_posts_json_with_bearer_token(tmp_path: Path, hook: Hook) -> None:
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    make(tmp_path, url=hook.url, token_file=str(token), headers={"X-Team": "mail"}).send(message())
    ((headers, body),) = hook.received
    assert headers["Authorization"] == "Bearer t0ken"
    assert headers["X-Team"] == "mail"
    assert headers["Content-Type"] == "application/json"
    assert body["severity"] == "critical"  # 2 days left
    assert body["hostname"] == "mx1.example.com"
    assert body["subject"].startswith("[certmgr] RENEWAL FAILED")
    assert body["facts"]["days_left"] == 2
    assert body["facts"]["fix_commands"] == ["certmgr -c /etc/c.toml renew mx1.example.com --force"]


def test_http_500_is_a_notify_error(tmp_path: Path, hook: Hook) -> None:
    hook.status = 500
    with pytest.raises(NotifyError, match=r"answered HTTP 500.*boom"):
        make(tmp_path, url=hook.url).send(message())
    assert len(hook.received) == 1


def test_https_verified_with_ca_bundle(tmp_path: Path, https_hook: Hook) -> None:
    assert https_hook.ca_file is not None
    make(tmp_path, url=https_hook.url, ca_bundle=str(https_hook.ca_file)).send(message())
    assert len(https_hook.received) == 1


def test_https_untrusted_is_refused(tmp_path: Path, https_hook: Hook) -> None:
    with pytest.raises(NotifyError, match="TLS verification failed"):
        make(tmp_path, url=https_hook.url).send(message())
    assert not https_hook.received


def test_unreachable_is_a_notify_error(tmp_path: Path) -> None:
    from tests.peers.util import free_port

    with pytest.raises(NotifyError, match=r"cannot deliver.*service is up"):
        make(tmp_path, url=f"http://127.0.0.1:{free_port()}/x", timeout=2).send(message())


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"url": "http://hooks.example.com/x"}, "url"),  # clear text over a network
        ({"url": "ftp://127.0.0.1/x"}, "url"),
        ({"url": "https://h.example.com/", "token": "inline"}, "token"),
        ({"url": "https://h.example.com/", "headers": {"X-A": "a\r\nInjected: 1"}}, "headers"),
        ({"url": "https://h.example.com/", "retries": 3}, "retries"),
    ],
)
def test_config_errors(tmp_path: Path, table: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        make(tmp_path, **table)
    assert err.value.key == key


def test_http_allowed_on_loopback_only(tmp_path: Path) -> None:
    assert make(tmp_path, url="http://[::1]:8080/x").config.url == "http://[::1]:8080/x"
    assert make(tmp_path, url="http://localhost/x").config.url == "http://localhost/x"
