"""A private Exim 4.96 on a loopback port, from the Debian packages unpacked by scripts/fetch-exim.sh.

What works here (Debian 12, run as root), found by trying:
- Exim and Postfix conflict as Debian packages, so Exim is never installed: its
  .debs are unpacked into /opt/certmgr-peers/exim (or $CERTMGR_EXIM_DIR), with
  ``libidn12`` next to it, found through ``LD_LIBRARY_PATH``.
- The binary is built with ``EXIM_USER=ref:Debian-exim`` and looks the user up
  before reading any config: the script creates that system user when missing.
- ``exim4 -C <conf> -bdf -oX <port>`` as root runs the daemon in the foreground
  with our own config (root may use -C and keep privilege).  Spool and logs live
  in a runtime dir owned by ``Debian-exim`` (0755 under /tmp, removed on stop).
- Exim reads its TLS key as ``Debian-exim`` (as on a Debian server, where the key
  is 0640 root:Debian-exim): the certificates go in ``<run dir>/certs``
  (:attr:`EximPeer.cert_dir`, reachable by that user, unlike pytest's 0700
  tmp_path) and the deployer is given ``group = "Debian-exim"``.
- Exim purges its environment at start; ``keep_environment = LD_LIBRARY_PATH``
  keeps the library path so the daemon can re-exec itself.
- ``kill -HUP`` does not work for an unpacked Exim: the daemon re-execs the
  compiled-in path /usr/sbin/exim4, which does not exist here, and dies.  So the
  reload is a restart: :attr:`EximPeer.reload_command` is
  ``python -m tests.peers.exim restart <state.json>``, which stops the daemon and
  starts a new one (the state file holds its argv and current pid).
- ``tls_certificate``/``tls_privatekey`` accept colon-separated lists (dual RSA+ECDSA).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.peers.util import free_port, wait_port

EXIM_DIR = Path(os.environ.get("CERTMGR_EXIM_DIR", "/opt/certmgr-peers/exim"))


def exim_binary() -> Path:
    binary = EXIM_DIR / "usr/sbin/exim4"
    if not binary.exists():
        msg = f"Exim is not unpacked in {EXIM_DIR}: run scripts/fetch-exim.sh"
        if os.environ.get("CERTMGR_ALLOW_SKIP") == "1":
            pytest.skip(msg)
        pytest.fail(msg)
    return binary


def exim_env() -> dict[str, str]:
    libs = ":".join(str(p) for p in (EXIM_DIR / "usr/lib").glob("*-linux-gnu"))
    return {**os.environ, "LD_LIBRARY_PATH": libs}


class EximPeer:
    def __init__(self, root: Path, *, hostname: str, certs: list[str], keys: list[str],
                 include_tls: bool = False, routes: str | None = None) -> None:
        """``certs``/``keys``: file names inside :attr:`cert_dir` (one per algorithm).
        ``include_tls``: the two TLS settings live in :attr:`tls_config`, ``.include``d from the
        config (the file the exim deployer's ``tls_config`` option rewrites).
        ``routes``: main options, ACLs, routers and transports that replace the
        default (every recipient refused), for a test that relays real mail."""
        self.binary = exim_binary()
        self.root = root
        self.conf = root / "exim.conf"
        self.hostname = hostname
        self.port = free_port()
        self.run_dir = Path(tempfile.mkdtemp(prefix="certmgr-exim-"))
        self.run_dir.chmod(0o755)
        self.user = pwd.getpwnam("Debian-exim")
        os.chown(self.run_dir, self.user.pw_uid, self.user.pw_gid)
        self.cert_dir = self.run_dir / "certs"
        self.cert_dir.mkdir(mode=0o755)
        self.certs = [self.cert_dir / c for c in certs]
        self.keys = [self.cert_dir / k for k in keys]
        self.tls_config = root / "exim-tls.conf" if include_tls else None
        self.routes = routes

    def write_config(self) -> None:
        spool = self.run_dir / "spool"
        spool.mkdir(exist_ok=True)
        os.chown(spool, self.user.pw_uid, self.user.pw_gid)
        self.conf.write_text(
            "keep_environment = LD_LIBRARY_PATH\n"
            f"primary_hostname = {self.hostname}\n"
            "smtp_banner = $primary_hostname ESMTP Exim\n"
            f"daemon_smtp_ports = {self.port}\nlocal_interfaces = 127.0.0.1\n"
            f"spool_directory = {spool}\nlog_file_path = {self.run_dir}/%slog\n"
            f"pid_file_path = {self.run_dir}/exim.pid\n"
            "tls_advertise_hosts = *\n"
            + self._tls_settings()
            + (self.routes if self.routes is not None else
               "acl_smtp_rcpt = acl_check_rcpt\nbegin acl\nacl_check_rcpt:\n  deny\n")
        )

    def _tls_settings(self) -> str:
        settings = (f"tls_certificate = {' : '.join(map(str, self.certs))}\n"
                    f"tls_privatekey = {' : '.join(map(str, self.keys))}\n")
        if self.tls_config is None:
            return settings
        self.tls_config.write_text(settings)
        return f".include {self.tls_config}\n"

    @property
    def log(self) -> Path:
        return self.run_dir / "mainlog"

    @property
    def state_file(self) -> Path:
        return self.root / "exim-state.json"

    def start(self) -> EximPeer:
        self.write_config()
        argv = [str(self.binary), "-C", str(self.conf), "-bdf", "-oX", str(self.port)]
        self.state_file.write_text(json.dumps({"argv": argv, "port": self.port, "pid": None,
                                               "log_dir": str(self.run_dir)}))
        try:
            _restart(self.state_file)
        except RuntimeError:
            self.stop()
            raise
        return self

    @property
    def reload_command(self) -> list[str]:
        return [sys.executable, "-m", "tests.peers.exim", "restart", str(self.state_file)]

    def run_queue(self) -> None:
        """Deliver what is queued, in this process's own queue run: with ``queue_only``
        (see ``routes``) nothing depends on the daemon re-executing /usr/sbin/exim4."""
        proc = subprocess.run([str(self.binary), "-C", str(self.conf), "-qff"], env=exim_env(),
                              capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"exim -qff failed: {proc.stderr}{proc.stdout}")

    def install_key(self, path: Path, data: bytes) -> None:
        """Write a key the way a Debian admin would: 0640 root:Debian-exim."""
        path.write_bytes(data)
        os.chown(path, 0, self.user.pw_gid)
        path.chmod(0o640)

    def stop(self) -> None:
        if self.state_file.exists():
            _kill(json.loads(self.state_file.read_text()).get("pid"))
        shutil.rmtree(self.run_dir, ignore_errors=True)


def _kill(pid: int | None) -> None:
    if not pid:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            # reap it when it is our child; otherwise just see whether it is gone
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            pass
        if _gone(pid):
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


def _gone(pid: int) -> bool:
    # a zombie (exited, not yet reaped by the process that started it) counts as gone
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _restart(state_file: Path) -> None:
    """Stop the daemon named in ``state_file`` (if any) and start it again."""
    state = json.loads(state_file.read_text())
    _kill(state.get("pid"))
    proc = subprocess.Popen(state["argv"], env=exim_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    state["pid"] = proc.pid
    state_file.write_text(json.dumps(state))
    try:
        wait_port(state["port"], timeout=15)
    except TimeoutError:
        panic = Path(state["log_dir"]) / "paniclog"
        raise RuntimeError(f"exim did not start: {panic.read_text() if panic.exists() else ''}") from None


if __name__ == "__main__":
    # python -m tests.peers.exim restart <state.json>: the tests' "reload" of Exim
    if len(sys.argv) != 3 or sys.argv[1] != "restart":
        sys.exit("usage: python -m tests.peers.exim restart STATE_FILE")
    try:
        _restart(Path(sys.argv[2]))
    except RuntimeError as e:
        sys.exit(str(e))
