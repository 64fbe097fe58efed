"""Small helpers shared by the real-peer fixtures."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def random_loopback_address(port: int = 25) -> str:
    """A 127.x.y.z address (not 127.0.0.1) where ``port`` is free for TCP and UDP right now and
    that no other test has given ``lo``: for a server of its own on a well-known port (a
    partner MTA on 25, a resolver on 53, an MTA-STS web server on 443), as on the Internet.
    Random, so parallel test runs rarely collide."""
    import random

    for _ in range(200):
        address = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(2, 254)}"
        if subprocess.run(["ip", "-4", "addr", "show", "to", f"{address}/32"], capture_output=True,
                          text=True).stdout.strip():
            continue  # another test's server holds it (see tests.peers.named.add_loopback_address)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t, \
                    socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                t.bind((address, port))
                u.bind((address, port))
        except OSError:
            continue
        return address
    raise RuntimeError(f"no free loopback address for port {port}")


def wait_port(port: int, host: str = "127.0.0.1", timeout: float = 15.0) -> None:
    """Wait until something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s") from None
            time.sleep(0.02)


def require_binary(name: str, *, dirs: tuple[str, ...] = ("/usr/sbin", "/usr/bin")) -> str:
    """Path of a binary a test needs (on PATH or in one of ``dirs``).  Missing binaries fail
    the test (CI installs them); set CERTMGR_ALLOW_SKIP=1 to skip instead on a machine without them."""
    path = shutil.which(name) or next((f"{d}/{name}" for d in dirs if os.path.exists(f"{d}/{name}")), None)
    if path:
        return path
    msg = f"{name} is not installed; run scripts/setup.sh (it installs every test peer)"
    if os.environ.get("CERTMGR_ALLOW_SKIP") == "1":
        pytest.skip(msg)
    pytest.fail(msg)


def state_fingerprint(state: Path) -> dict[str, str]:
    """SHA-256 of every file in a state dir; SQLite databases by their logical content.

    A WAL checkpoint rewrites the database file's bytes without changing any row, so
    comparing bytes would flag a change where there is none.
    """
    import hashlib
    import sqlite3

    out: dict[str, str] = {}
    for p in sorted(state.rglob("*")):
        if not p.is_file() or p.name.endswith(("-wal", "-shm", ".migrate-lock")):
            continue
        data = p.read_bytes()
        if p.suffix == ".db":
            try:
                con = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
                try:
                    data = "\n".join(con.iterdump()).encode()
                finally:
                    con.close()
            except sqlite3.Error:
                # a read-only or full file system: no checkpoint can run there, bytes are stable
                wal = p.with_name(p.name + "-wal")
                data += wal.read_bytes() if wal.exists() else b""
        out[str(p.relative_to(state))] = hashlib.sha256(data).hexdigest()
    return out


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """Terminate a peer process, killing it if it does not exit within ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
