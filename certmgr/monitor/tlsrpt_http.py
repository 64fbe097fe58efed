"""The HTTPS endpoint of RFC 8460 §3: reporting MTAs POST a report to it.

``POST`` with ``Content-Type: application/tlsrpt+json`` or ``+gzip``:
``201`` stored, ``200`` already stored (same ``report-id``), ``400`` refused
(the reason in the body), ``411``/``413`` no or too large a body, ``415`` another
media type.  The body is read up to ``MAX_REPORT_BYTES``; a gzip body is
decompressed under the same cap.  Stores go through one lock: the storage is
used by one request at a time.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from certmgr.monitor.storage import MonitorStorage
from certmgr.monitor.tlsrpt import MAX_REPORT_BYTES, MEDIA_TYPES, TlsReportError, parse_body


class TlsRptServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], storage: MonitorStorage, *, cert_file: Path, key_file: Path,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        super().__init__(address, _Handler)
        self.storage = storage
        self.clock = clock
        self.lock = threading.Lock()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert_file, key_file)
        self.socket = ctx.wrap_socket(self.socket, server_side=True)

    def serve_in_thread(self) -> threading.Thread:
        t = threading.Thread(target=self.serve_forever, name="tlsrpt-https", daemon=True)
        t.start()
        return t


class _Handler(BaseHTTPRequestHandler):
    server: TlsRptServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass  # the daemon logs outcomes, not every request line

    def _reply(self, code: int, text: str) -> None:
        body = (text + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        media = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if media not in MEDIA_TYPES:
            self._reply(415, f"Content-Type must be {' or '.join(MEDIA_TYPES)}")
            return
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self._reply(411, "Content-Length required")
            return
        if int(length) > MAX_REPORT_BYTES:
            self._reply(413, f"report larger than {MAX_REPORT_BYTES} bytes")
            return
        data = self.rfile.read(int(length))
        try:
            report = parse_body(data, media)
        except TlsReportError as e:
            self._reply(400, str(e))
            return
        with self.server.lock:
            stored = self.server.storage.add_tlsrpt(report, self.server.clock())
        self._reply(201 if stored else 200, f"{'stored' if stored else 'already stored'}: {report.report_id}")
