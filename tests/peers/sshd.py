"""A private OpenSSH server on 127.0.0.1:<free port> for remote-deploy tests.

Own host key, own sshd_config, ``authorized_keys`` for root holding a freshly
generated client key; ``known_hosts`` pins the host key, so the client runs
with ``StrictHostKeyChecking=yes`` as in production.  Started as
``/usr/sbin/sshd -D -e -f <config>`` (foreground, log on stderr).  sshd needs
its privilege-separation dir ``/run/sshd``; it is created when missing.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.peers.util import free_port, require_binary, stop_process, wait_port


class SshdPeer:
    def __init__(self, root: Path) -> None:
        self.sshd = require_binary("sshd")
        self.keygen = require_binary("ssh-keygen")
        require_binary("ssh")
        self.root = root
        self.port = free_port()
        self.host_key = root / "ssh_host_ed25519_key"
        self.identity = root / "id_ed25519"
        self.known_hosts = root / "known_hosts"
        self.config = root / "sshd_config"
        self.log = root / "sshd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ssh://root@127.0.0.1:{self.port}"

    def _keygen(self, path: Path) -> None:
        subprocess.run([self.keygen, "-q", "-t", "ed25519", "-N", "", "-C", "certmgr-test", "-f", str(path)],
                       check=True)

    def start(self) -> SshdPeer:
        self.root.mkdir(parents=True, exist_ok=True)
        self._keygen(self.host_key)
        self._keygen(self.identity)
        authorized = self.root / "authorized_keys"
        authorized.write_text(Path(f"{self.identity}.pub").read_text())
        authorized.chmod(0o600)
        host_pub = Path(f"{self.host_key}.pub").read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        self.config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.host_key}\n"
            f"PidFile {self.root}/sshd.pid\nAuthorizedKeysFile {authorized}\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            "MaxStartups 100:30:200\nMaxSessions 50\n"
        )
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([self.sshd, "-D", "-e", "-f", str(self.config)], stdout=log,
                                         stderr=subprocess.STDOUT)
        try:
            wait_port(self.port)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"sshd did not start: {self.log.read_text()}") from None
        return self

    def stop(self) -> None:
        stop_process(self.proc, 10)
