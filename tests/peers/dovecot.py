"""A private Dovecot (2.3 from Debian) serving IMAP and POP3 on free loopback ports.

Runs in the foreground (``dovecot -F -c <conf>``) as root.  Its ``base_dir``
(sockets, login chroot) must be reachable by the unprivileged login users, so
it lives in a 0755 dir under /tmp, removed on stop; config, certificates and the
log stay in the test's tmp dir.  The main config includes ``certmgr.conf``, the
file the dovecot deployer writes (``ssl_cert = </…`` and ``ssl_key = </…``).
No user can log in: a certificate test needs only the greeting and STARTTLS.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.peers.util import free_port, require_binary, stop_process, wait_port


class DovecotPeer:
    def __init__(self, root: Path, *, cert: Path, key: Path, extra: str = "") -> None:
        """``extra``: more config lines, after the others (a later setting wins in Dovecot)."""
        self.binary = require_binary("dovecot")
        require_binary("doveadm")
        self.root = root
        self.conf = root / "dovecot.conf"
        self.snippet = root / "certmgr.conf"
        self.log = root / "dovecot.log"
        self.imap_port = free_port()
        self.imaps_port = free_port()
        self.pop3_port = free_port()
        self.pop3s_port = free_port()
        self.base_dir = Path(tempfile.mkdtemp(prefix="certmgr-dovecot-"))
        self.base_dir.chmod(0o755)
        self.snippet.write_text(f"ssl_cert = <{cert}\nssl_key = <{key}\n")
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(self) -> None:
        self.conf.write_text(
            f"base_dir = {self.base_dir}\n"
            f"state_dir = {self.base_dir}/state\n"
            f"log_path = {self.log}\ninfo_log_path = {self.log}\n"
            "protocols = imap pop3\nlisten = 127.0.0.1\nssl = yes\n"
            "ssl_min_protocol = TLSv1.2\n"
            "auth_mechanisms = plain\n"
            "passdb {\n  driver = static\n  args = password=\n}\n"
            "userdb {\n  driver = static\n  args = uid=nobody gid=nogroup home=/nonexistent\n}\n"
            "service imap-login {\n"
            f"  inet_listener imap {{\n    address = 127.0.0.1\n    port = {self.imap_port}\n  }}\n"
            f"  inet_listener imaps {{\n    address = 127.0.0.1\n    port = {self.imaps_port}\n"
            "    ssl = yes\n  }\n}\n"
            "service pop3-login {\n"
            f"  inet_listener pop3 {{\n    address = 127.0.0.1\n    port = {self.pop3_port}\n  }}\n"
            f"  inet_listener pop3s {{\n    address = 127.0.0.1\n    port = {self.pop3s_port}\n"
            "    ssl = yes\n  }\n  chroot =\n}\n"
            "service anvil {\n  chroot =\n}\nservice imap-login {\n  chroot =\n}\n"
            f"!include {self.snippet}\n"
            + self.extra
        )
        (self.base_dir / "state").mkdir(exist_ok=True)

    def start(self) -> DovecotPeer:
        self.write_config()
        self.proc = subprocess.Popen([self.binary, "-F", "-c", str(self.conf)], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        try:
            wait_port(self.imap_port)
            wait_port(self.imaps_port)
            wait_port(self.pop3_port)
            wait_port(self.pop3s_port)
        except TimeoutError:
            out = self.proc.stdout.read().decode() if self.proc.poll() is not None and self.proc.stdout else ""
            log = self.log.read_text() if self.log.exists() else ""
            self.stop()
            raise RuntimeError(f"dovecot did not start: {out}{log}") from None
        return self

    @property
    def reload_command(self) -> list[str]:
        return ["doveadm", "-c", str(self.conf), "reload"]

    def stop(self) -> None:
        stop_process(self.proc, 15)
        if self.proc is not None and self.proc.stdout:
            with contextlib.suppress(OSError):
                self.proc.stdout.close()
        shutil.rmtree(self.base_dir, ignore_errors=True)
