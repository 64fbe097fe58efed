"""HTTP-01 solver: config validation, webroot files, the shared standalone listener."""

from __future__ import annotations

import concurrent.futures as cf
import stat
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from certmgr.errors import ChallengeError, ConfigError
from certmgr.interfaces import ChallengeTask, Options, ProviderEnv
from providers.challenges.http01 import Http01Solver
from tests.peers.util import free_port


def build(table: dict[str, Any], base: Path) -> Http01Solver:
    return Http01Solver.from_config(
        "challenge",
        Options(table, where="issuer.x.challenge", base_dir=base),
        ProviderEnv(config_dir=base, state_dir=base),
    )


def task(n: int) -> ChallengeTask:
    return ChallengeTask(
        domain=f"mx{n}.example.test",
        token=f"token-{n}",
        key_authorization=f"token-{n}.thumb",
        dns_value="unused",
    )


def fetch(port: int, token: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/.well-known/acme-challenge/{token}", timeout=5
        ) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""


def test_standalone_one_listener_for_many_tasks(tmp_path: Path) -> None:
    port = free_port()
    solver = build({"type": "http-01", "address": "127.0.0.1", "port": port}, tmp_path)
    try:
        tasks = [task(i) for i in range(20)]
        with cf.ThreadPoolExecutor(10) as ex:
            list(ex.map(solver.present, tasks))
        for t in tasks:
            assert fetch(port, t.token) == (200, t.key_authorization.encode())
        solver.cleanup(tasks[0])
        assert fetch(port, tasks[0].token)[0] == 404
        assert fetch(port, tasks[1].token)[0] == 200
    finally:
        solver.close()
    with pytest.raises(OSError):
        fetch(port, "token-1")


def test_standalone_listens_on_an_ipv6_address(tmp_path: Path) -> None:
    port = free_port()
    solver = build({"type": "http-01", "address": "::1", "port": port}, tmp_path)
    try:
        solver.present(task(1))
        url = f"http://[::1]:{port}/.well-known/acme-challenge/token-1"
        with urllib.request.urlopen(url, timeout=5) as r:
            assert r.read() == b"token-1.thumb"
    finally:
        solver.close()


def test_standalone_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        solver = build({"type": "http-01", "address": "127.0.0.1", "port": port}, tmp_path)
        with pytest.raises(ChallengeError, match=f"127.0.0.1:{port}"):
            solver.present(task(1))


def test_webroot_writes_world_readable_and_removes(tmp_path: Path) -> None:
    root = tmp_path / "www"
    root.mkdir()  # the web server's document root
    solver = build({"type": "http-01", "mode": "webroot", "webroot": "www"}, tmp_path)
    t = task(1)
    solver.present(t)
    path = root / ".well-known" / "acme-challenge" / t.token
    assert path.read_text() == t.key_authorization
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == [t.token], "no temp files left behind"
    solver.cleanup(t)
    assert not path.exists()
    solver.cleanup(t)  # idempotent


def test_unsafe_token_refused(tmp_path: Path) -> None:
    solver = build({"type": "http-01", "mode": "webroot", "webroot": str(tmp_path)}, tmp_path)
    bad = ChallengeTask(domain="x", token="../evil", key_authorization="k", dns_value="v")
    with pytest.raises(ChallengeError):
        solver.present(bad)


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"type": "http-01", "mode": "webroot"}, "webroot"),
        ({"type": "http-01", "mode": "proxy"}, "mode"),
        ({"type": "http-01", "port": 0}, "port"),
        ({"type": "http-01", "webroot": "/srv"}, "webroot"),
        ({"type": "http-01", "prot": 80}, "prot"),
        ({"type": "http-01", "address": "mx1.example.com"}, "address"),
        ({"type": "http-01", "mode": "webroot", "webroot": "/nonexistent/www"}, "webroot"),
        ({"type": "dns-01"}, "type"),
    ],
)
def test_bad_config(tmp_path: Path, table: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        build(table, tmp_path)
    assert err.value.key == key
