"""The probe's protocol handling against small scripted servers on loopback.

Each server speaks just enough SMTP or IMAP (real sockets, real TLS with a test
CA certificate) to exercise one path of the dialogue: multi-line greetings,
implicit TLS, IMAP STARTTLS, a refused STARTTLS, a refusing greeting, silence.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from certmgr.probe.assess import assess
from certmgr.probe.client import ProbeResult, probe
from tests.peers.testca import TestCA

pytestmark = pytest.mark.integration
HOST = "mx1.example.com"
Script = Callable[[socket.socket, ssl.SSLContext], object]
#: server context, the test CA root file, SHA-256 of the served leaf
TLS = tuple[ssl.SSLContext, Path, str]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLS:
    root = tmp_path_factory.mktemp("dialog")
    ca = TestCA()
    bundle = ca.leaf(HOST)
    (root / "cert.pem").write_bytes(bundle.fullchain_pem)
    (root / "key.pem").write_bytes(bundle.key_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(root / "cert.pem", root / "key.pem")
    return ctx, ca.write_root(root / "root.pem"), bundle.sha256


@pytest.fixture
def serve(tls: TLS) -> Iterator[Callable[[Script], int]]:
    servers: list[tuple[socket.socket, threading.Thread]] = []

    def start(script: Script) -> int:
        listener = socket.create_server(("127.0.0.1", 0))

        def run() -> None:
            conn, _ = listener.accept()
            with conn:
                try:
                    script(conn, tls[0])
                except (OSError, StopIteration):
                    pass  # the client hung up: that is the point of some scripts

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        servers.append((listener, thread))
        return int(listener.getsockname()[1])

    yield start
    for listener, thread in servers:
        listener.close()
        thread.join(5)


def lines(sock: socket.socket) -> Iterator[str]:
    f = sock.makefile("rb")
    for raw in f:
        yield raw.decode().rstrip("\r\n")


def smtp_script(greeting: list[str], ehlo: list[str], starttls_reply: str = "220 go ahead") -> Script:
    def script(conn: socket.socket, ctx: ssl.SSLContext) -> None:
        conn.sendall("".join(g + "\r\n" for g in greeting).encode())
        reader = lines(conn)
        if next(reader).startswith("EHLO"):
            conn.sendall("".join(e + "\r\n" for e in ehlo).encode())
        if next(reader) == "STARTTLS":
            conn.sendall((starttls_reply + "\r\n").encode())
            if starttls_reply.startswith("220"):
                with ctx.wrap_socket(conn, server_side=True) as t:
                    t.recv(100)

    return script


def judge(result: ProbeResult) -> tuple[str, list[str]]:
    return assess(result, expected_hostname=HOST, managed_sha256s=None, now=datetime.now(UTC))


def test_multiline_greeting_and_extensions(serve: Callable[[Script], int], tls: TLS) -> None:
    port = serve(smtp_script([f"220-{HOST} ESMTP welcome", "220 more text"],
                             [f"250-{HOST}", "250-PIPELINING", "250-STARTTLS", "250 8BITMIME"]))
    r = probe("127.0.0.1", port, servername=HOST, trust_file=tls[1], timeout=5)
    assert r.banner_host == HOST and r.starttls and r.certificate is not None
    assert r.certificate.sha256 == tls[2] and judge(r) == ("ok", [])


def test_starttls_refused(serve: Callable[[Script], int]) -> None:
    port = serve(smtp_script([f"220 {HOST} ESMTP"], [f"250-{HOST}", "250 STARTTLS"], "454 TLS not available"))
    r = probe("127.0.0.1", port, timeout=5)
    assert judge(r) == ("critical", [f"127.0.0.1:{port}: STARTTLS offered but refused with 454 TLS not available"])


def test_refusing_greeting_is_critical(serve: Callable[[Script], int]) -> None:
    port = serve(smtp_script(["554 no service for you"], []))
    r = probe("127.0.0.1", port, timeout=5)
    assert judge(r) == ("critical", [f"127.0.0.1:{port}: the server greets with 554 no service for you"])


def test_silent_server_is_unknown(serve: Callable[[Script], int]) -> None:
    port = serve(lambda conn, ctx: conn.recv(10))
    r = probe("127.0.0.1", port, timeout=0.5)
    assert judge(r) == ("unknown", [f"127.0.0.1:{port}: timed out"])


def test_implicit_tls_smtp_reads_the_banner_inside_tls(serve: Callable[[Script], int], tls: TLS) -> None:
    def script(conn: socket.socket, ctx: ssl.SSLContext) -> None:
        with ctx.wrap_socket(conn, server_side=True) as t:
            t.sendall(f"220 {HOST} ESMTP\r\n".encode())
            t.recv(100)

    port = serve(script)
    r = probe("127.0.0.1", port, implicit_tls=True, servername=HOST, trust_file=tls[1], timeout=5)
    assert r.implicit_tls and r.banner_host == HOST and r.certificate is not None
    assert judge(r) == ("ok", [])


def test_imap_starttls(serve: Callable[[Script], int], tls: TLS) -> None:
    def script(conn: socket.socket, ctx: ssl.SSLContext) -> None:
        conn.sendall(b"* OK IMAP4rev1 ready\r\n")
        reader = lines(conn)
        assert next(reader) == "a1 CAPABILITY"
        conn.sendall(b"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\na1 OK done\r\n")
        assert next(reader) == "a2 STARTTLS"
        conn.sendall(b"a2 OK begin TLS\r\n")
        with ctx.wrap_socket(conn, server_side=True) as t:
            t.recv(100)

    port = serve(script)
    r = probe("127.0.0.1", port, protocol="imap", servername=HOST, trust_file=tls[1], timeout=5)
    assert r.starttls and r.banner_host is None and r.certificate is not None
    assert r.certificate.sha256 == tls[2]


def test_imap_without_starttls(serve: Callable[[Script], int]) -> None:
    def script(conn: socket.socket, ctx: ssl.SSLContext) -> None:
        conn.sendall(b"* OK ready\r\n")
        next(lines(conn))
        conn.sendall(b"* CAPABILITY IMAP4rev1\r\na1 OK done\r\n")
        conn.recv(100)

    r = probe("127.0.0.1", serve(script), protocol="imap", timeout=5)
    assert judge(r) == ("critical", ["STARTTLS is not offered to this client"])
