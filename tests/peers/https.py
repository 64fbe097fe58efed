"""A small HTTPS server for tests: fixed bodies per (Host, path), on any loopback address.

Used for MTA-STS policies (``https://mta-sts.<domain>/.well-known/mta-sts.txt``).
"""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def serving_https(address: str, port: int, chain_file: Path, key_file: Path,
                  pages: Mapping[tuple[str, str], bytes | tuple[bytes, str]],
                  ) -> Iterator[http.server.ThreadingHTTPServer]:
    """Serve ``pages`` ((host, path) → body, as text/plain, or (body, media type)); 404 otherwise."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            host = (self.headers.get("Host") or "").split(":")[0].lower()
            page = pages.get((host, self.path))
            body, media = page if isinstance(page, tuple) else (page, "text/plain")
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", media)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, format: str, *args: object) -> None:
            pass

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(chain_file), str(key_file))
    server = http.server.ThreadingHTTPServer((address, port), Handler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
