"""An HTTPS reverse proxy in front of pebble that injects faults and counts requests.

It listens on a free loopback port with the same throw-away TLS certificate as pebble
(so a client with pebble's ``ca_bundle`` trusts it) and forwards every request to pebble
with the ``Host`` header unchanged.  Pebble builds its URLs (directory, orders, nonces)
from that header, so once a client starts at the proxy's directory every later request
goes through the proxy as well.

Faults, switched at any time from the test:

- ``down()``: the listening socket is closed, so connections are refused; ``up()`` reopens it;
- ``fail(status, count=None, retry_after=None, path=None)``: answer ``status`` (e.g. 500,
  503, 429) to the next ``count`` requests (for ``path`` only, when given), or to all while
  ``count`` is None, with an optional ``Retry-After`` header; 429 answers carry an ACME
  ``rateLimited`` problem document, 5xx answers a plain-text body as a load balancer in
  front of a CA would send;
- ``heal()``: pass everything through again.

Every request that reaches the proxy is counted by path, whether it was forwarded or
answered with a fault.

ACME Renewal Information (RFC 9773), which pebble 2.4 lacks, can be laid over pebble:
``offer_ari()`` adds ``renewalInfo`` to the directory and answers ``GET /ari/<cert-id>`` from
``ari_windows`` (404 for a certificate it has no window for); the ``replaces`` field of every
new-order request is recorded in ``replaces``.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from tests.peers.util import free_port

#: headers that belong to one hop and are not forwarded
_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
                  "proxy-connection", "content-length"})


class _Fault:
    def __init__(self, status: int, count: int | None, retry_after: int | None, path: str | None) -> None:
        self.status = status
        self.path = path
        self.remaining = count
        self.retry_after = retry_after


class FaultProxy:
    """A counting, fault-injecting HTTPS reverse proxy for one upstream (pebble)."""

    def __init__(self, upstream_port: int, *, cert: Path, key: Path, ca: Path,
                 upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._tls.load_cert_chain(str(cert), str(key))
        self._client_tls = ssl.create_default_context(cafile=str(ca))
        self._lock = threading.Lock()
        self._fault: _Fault | None = None
        self._counts: Counter[str] = Counter()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._ari = False
        self._ari_retry_after = 21600
        #: ARI certificate id -> the suggested window (start, end) answered for it
        self.ari_windows: dict[str, tuple[datetime, datetime]] = {}
        #: the ``replaces`` field of every new-order request (None when absent)
        self.replaces: list[str | None] = []

    # -- control ------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def directory_url(self, path: str = "/dir") -> str:
        return self.base_url + path

    def fail(self, status: int, *, count: int | None = None, retry_after: int | None = None,
             path: str | None = None) -> None:
        """Answer ``status`` instead of forwarding (only to requests for ``path`` when given)."""
        with self._lock:
            self._fault = _Fault(status, count, retry_after, path)

    def offer_ari(self, retry_after: int = 21600) -> None:
        self._ari_retry_after = retry_after
        self._ari = True

    def _ari_answer(self, path: str) -> tuple[int, list[tuple[str, str]], bytes]:
        window = self.ari_windows.get(path.rsplit("/", 1)[-1])
        if window is None:
            problem = {"type": "urn:ietf:params:acme:error:malformed", "detail": "unknown certificate"}
            return 404, [("Content-Type", "application/problem+json")], json.dumps(problem).encode()
        body = {"suggestedWindow": {"start": window[0].isoformat(), "end": window[1].isoformat()}}
        return 200, [("Content-Type", "application/json"),
                     ("Retry-After", str(self._ari_retry_after))], json.dumps(body).encode()

    def _overlay(self, method: str, path: str, body: bytes | None, status: int,
                 headers: list[tuple[str, str]], data: bytes) -> bytes:
        """With ARI on: announce it in the directory, and note what new-order requests replace."""
        if not self._ari:
            return data
        if method == "GET" and path == "/dir" and status == 200:
            directory = json.loads(data)
            directory["renewalInfo"] = f"{self.base_url}/ari"
            return json.dumps(directory).encode()
        if method == "POST" and path == "/order-plz" and body:
            payload = json.loads(body)["payload"]
            order = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            with self._lock:
                self.replaces.append(order.get("replaces"))
        return data

    def heal(self) -> None:
        with self._lock:
            self._fault = None

    def counts(self) -> dict[str, int]:
        """Requests received so far, by path (query strings dropped)."""
        with self._lock:
            return dict(self._counts)

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()

    def up(self) -> None:
        if self._server is not None:
            return
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler_class(), bind_and_activate=False)
        server.allow_reuse_address = True
        server.daemon_threads = True
        server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.server_bind()
        server.server_activate()
        server.socket = self._tls.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"faultproxy-{self.port}", daemon=True)
        self._thread.start()

    def down(self) -> None:
        """Close the listening socket: new connections are refused."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    # -- the proxy ------------------------------------------------------------

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            self._counts[path] += 1
            fault = self._fault
            if fault is None or (fault.path is not None and path != fault.path):
                return None
            if fault.remaining is not None:
                if fault.remaining <= 0:
                    self._fault = None
                    return None
                fault.remaining -= 1
            return fault

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes | None
                 ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPSConnection(*self.upstream, context=self._client_tls, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP], data
        finally:
            conn.close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: the counts are the record

            def _handle(self) -> None:
                path = urlsplit(self.path).path
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                fault = proxy._take_fault(path)
                if fault is not None:
                    self._send_fault(fault)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                try:
                    if proxy._ari and path.startswith("/ari/"):
                        status, out_headers, data = proxy._ari_answer(path)
                    else:
                        status, out_headers, data = proxy._forward(self.command, self.path, headers, body)
                        data = proxy._overlay(self.command, path, body, status, out_headers, data)
                except OSError as e:
                    status, out_headers = 502, [("Content-Type", "text/plain")]
                    data = f"upstream unreachable: {e}\n".encode()
                self.send_response(status)
                for k, v in out_headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _send_fault(self, fault: _Fault) -> None:
                if fault.status == 429:
                    data = json.dumps({
                        "type": "urn:ietf:params:acme:error:rateLimited",
                        "detail": "too many new orders recently (fault injected by the test proxy)",
                        "status": 429,
                    }).encode()
                    ctype = "application/problem+json"
                else:
                    data = f"{fault.status} service unavailable (fault injected by the test proxy)\n".encode()
                    ctype = "text/plain"
                self.send_response(fault.status)
                self.send_header("Content-Type", ctype)
                if fault.retry_after is not None:
                    self.send_header("Retry-After", str(fault.retry_after))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_HEAD = _handle

        return Handler


@contextmanager
def running_faultproxy(upstream_port: int, *, cert: Path, key: Path, ca: Path) -> Iterator[FaultProxy]:
    """A started proxy in front of 127.0.0.1:``upstream_port``, stopped afterwards."""
    proxy = FaultProxy(upstream_port, cert=cert, key=key, ca=ca)
    proxy.up()
    try:
        yield proxy
    finally:
        proxy.down()
