"""Fixtures for end-to-end tests: the certmgr CLI against a real pebble."""

from __future__ import annotations

import fcntl
import json
import os
import re
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers.pebble import Pebble, running_pebble


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    with running_pebble(tmp_path_factory.mktemp("pebble")) as p:
        yield p


class Cli:
    """Runs `python -m certmgr -c CONFIG ...` as a user would."""

    def __init__(self, config: Path) -> None:
        self.config = config

    def __call__(self, *args: str, check: int | None = 0, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "CERTMGR_CONFIG"}
        r = subprocess.run([sys.executable, "-m", "certmgr", "-c", str(self.config), *args],
                           capture_output=True, text=True, timeout=timeout, env=env)
        if check is not None:
            assert r.returncode == check, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
        return r

    def json(self, *args: str) -> Any:
        return json.loads(self(*args).stdout)

    def on_terminal(self, *args: str, columns: int = 80, timeout: float = 120, check: int = 0) -> str:
        """Run with stdout and stderr on a pseudo-terminal ``columns`` wide, as a person sees it;
        return what was shown (the exit status must be ``check``)."""
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        env = {k: v for k, v in os.environ.items() if k != "CERTMGR_CONFIG"}
        env.update(COLUMNS=str(columns), TERM="xterm")
        try:
            proc = subprocess.Popen([sys.executable, "-m", "certmgr", "-c", str(self.config), *args],
                                    stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env)
        finally:
            os.close(slave)
        out = bytearray()
        try:
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the terminal closed
                    break
                if not chunk:
                    break
                out += chunk
        finally:
            os.close(master)
        assert proc.wait(timeout=timeout) == check, out.decode(errors="replace")
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.decode()).replace("\r\n", "\n")


def acme_config(tmp_path: Path, pebble: Pebble, mtas: str, extra: str = "") -> Path:
    path = tmp_path / "certmgr.toml"
    path.write_text(f"""
[certmgr]
state_dir = "{tmp_path / 'state'}"
resolver = "{pebble.dns_server}"

{pebble.issuer_toml()}
[issuer.corp]
type = "manual"
{extra}
{mtas}
""")
    return path
