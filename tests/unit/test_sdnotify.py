"""sd_notify over a real AF_UNIX datagram socket (a path and an abstract name)."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

from certmgr.service.sdnotify import SdNotify


def _listen(address: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(address)
    s.settimeout(2)
    return s


def test_path_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with _listen(path) as srv:
        n = SdNotify({"NOTIFY_SOCKET": path})
        assert n.enabled
        assert n.ready("started")
        assert srv.recv(4096) == b"READY=1\nSTATUS=started"
        assert n.watchdog() and srv.recv(4096) == b"WATCHDOG=1"
        assert n.stopping() and srv.recv(4096) == b"STOPPING=1"


def test_abstract_socket() -> None:
    name = f"certmgr-test-{uuid.uuid4().hex}"
    with _listen("\0" + name) as srv:
        n = SdNotify({"NOTIFY_SOCKET": "@" + name})
        assert n.status("renewing 3 certificates")
        assert srv.recv(4096) == b"STATUS=renewing 3 certificates"


def test_without_socket_does_nothing() -> None:
    n = SdNotify({})
    assert not n.enabled and not n.ready() and n.watchdog_interval is None


def test_gone_socket_is_not_fatal(tmp_path: Path) -> None:
    assert not SdNotify({"NOTIFY_SOCKET": str(tmp_path / "nobody")}).ready()


def test_watchdog_interval() -> None:
    assert SdNotify({"WATCHDOG_USEC": "300000000"}).watchdog_interval == 150.0
    pid = str(os.getpid())
    assert SdNotify({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": pid}).watchdog_interval == 1.0
    assert SdNotify({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}).watchdog_interval is None
    assert SdNotify({"WATCHDOG_USEC": "bogus"}).watchdog_interval is None
