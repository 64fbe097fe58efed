"""HTTP-01 challenge solver: its own listener ("standalone") or files in a webroot.

Needs: for standalone, permission to listen on ``port`` (80 unless a proxy forwards);
for webroot, write access to ``<webroot>/.well-known/acme-challenge`` of a web server
that serves it on port 80.

Config (``challenge = {...}`` of an ACME issuer): ``type = "http-01"``, ``mode``
("standalone" | "webroot", default standalone), ``address`` (default "" = all),
``port`` (default 80), ``webroot`` (path, webroot mode).
"""

from __future__ import annotations

import contextlib
import http.server
import ipaddress
import logging
import os
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any, Self

from certmgr.errors import ChallengeError, ConfigError
from certmgr.interfaces import ChallengeTask, Options, ProviderEnv

log = logging.getLogger(__name__)

PREFIX = "/.well-known/acme-challenge/"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _ChallengeServer

    def do_GET(self) -> None:
        body: bytes | None = None
        if self.path.startswith(PREFIX):
            body = self.server.lookup(self.path[len(PREFIX) :])
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http-01 %s: " + format, self.client_address[0], *args)


class _ChallengeServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    #: the listen backlog.  socketserver's default of 5 is overrun when the CA validates many
    #: names at once (a renewal of 20 certificates), and each connection beyond it waits for
    #: the TCP retransmission a second later: a second added to those issuances.
    request_queue_size = socket.SOMAXCONN

    def __init__(self, address: tuple[str, int]) -> None:
        if ":" in address[0]:  # an IPv6 address: the listening socket must be of its family
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self._tokens: dict[str, bytes] = {}
        self._tokens_lock = threading.Lock()

    def lookup(self, token: str) -> bytes | None:
        with self._tokens_lock:
            return self._tokens.get(token)

    def put(self, token: str, value: bytes) -> None:
        with self._tokens_lock:
            self._tokens[token] = value

    def drop(self, token: str) -> None:
        with self._tokens_lock:
            self._tokens.pop(token, None)


class Http01Solver:
    """Answers HTTP-01 challenges; one instance is shared by all concurrent issuances."""

    challenge_type = "http-01"
    description = "HTTP-01: standalone listener or files in a webroot"

    def __init__(
        self, *, mode: str = "standalone", address: str = "", port: int = 80, webroot: Path | None = None
    ) -> None:
        if mode == "webroot" and webroot is None:
            raise ValueError("webroot mode needs a webroot")
        self.mode = mode
        self.address = address
        self.port = port
        self.webroot = webroot
        self._lock = threading.Lock()
        self._server: _ChallengeServer | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_config(cls, name: str, options: Options, env: ProviderEnv) -> Self:
        options.str("type", "http-01", choices=["http-01"])
        options.str("provider", None)
        mode = options.str("mode", "standalone", choices=["standalone", "webroot"])
        address = options.raw("address", "")
        if not isinstance(address, str):
            raise ConfigError(f"must be a string, got {address!r}", table=options.where, key="address")
        if address:
            try:
                address = str(ipaddress.ip_address(address))
            except ValueError:
                raise ConfigError(f"must be an IP address to listen on (or unset for all), got {address!r}",
                                  table=options.where, key="address") from None
        port = options.int("port", 80, min=1, max=65535)
        webroot = options.path("webroot", None)
        if mode == "webroot" and webroot is None:
            raise ConfigError('is required when mode = "webroot"', table=options.where, key="webroot")
        if webroot is not None and not webroot.is_dir():
            raise ConfigError(f"{webroot} is not a directory; give the web server's document root",
                              table=options.where, key="webroot")
        if mode == "standalone" and webroot is not None:
            raise ConfigError('only applies to mode = "webroot"', table=options.where, key="webroot")
        options.finish()
        return cls(mode=mode, address=address, port=port, webroot=webroot)

    # -- standalone -------------------------------------------------------

    def _ensure_server(self) -> _ChallengeServer:
        with self._lock:
            if self._server is None:
                try:
                    server = _ChallengeServer((self.address, self.port))
                except OSError as e:
                    where = f"{self.address or '*'}:{self.port}"
                    raise ChallengeError(
                        f"http-01: cannot listen on {where}: {e.strerror}; free the port, run with "
                        'permission to bind it, or use mode = "webroot"'
                    ) from e
                # the poll interval is how long close() waits for the loop to notice: 20 wakeups a
                # second while a challenge listener is open cost nothing measurable
                self._thread = threading.Thread(
                    target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="http-01", daemon=True
                )
                self._thread.start()
                self._server = server
            return self._server

    # -- webroot ----------------------------------------------------------

    def _challenge_dir(self) -> Path:
        assert self.webroot is not None
        return self.webroot / ".well-known" / "acme-challenge"

    def _write(self, task: ChallengeTask) -> None:
        directory = self._challenge_dir()
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o755)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(task.key_authorization.encode("ascii"))
                    f.flush()
                    os.fsync(f.fileno())
                # the web server usually runs as another user: the answer is public anyway
                os.chmod(tmp, 0o644)
                os.replace(tmp, directory / task.token)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as e:
            raise ChallengeError(
                f"http-01: cannot write the answer for {task.domain} into {directory}: {e.strerror}; "
                "check the webroot path and its permissions"
            ) from e

    # -- ChallengeSolver ----------------------------------------------------

    def present(self, task: ChallengeTask) -> None:
        if "/" in task.token or task.token.startswith("."):
            raise ChallengeError(f"http-01: refusing unsafe token {task.token!r} for {task.domain}")
        if self.mode == "webroot":
            self._write(task)
        else:
            self._ensure_server().put(task.token, task.key_authorization.encode("ascii"))

    def cleanup(self, task: ChallengeTask) -> None:
        if self.mode == "webroot":
            with contextlib.suppress(FileNotFoundError):
                (self._challenge_dir() / task.token).unlink()
        elif self._server is not None:
            self._server.drop(task.token)

    def close(self) -> None:
        with self._lock:
            server, self._server = self._server, None
            thread, self._thread = self._thread, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(5)
