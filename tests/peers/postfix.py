"""A private Postfix on 127.0.0.1:<free port>, with its own config, queue and log.

What makes it work here (Debian 12, Postfix 3.7, run as root):
- Postfix accepts ``-c <dir>`` only when the default ``/etc/postfix/main.cf``
  lists that dir in ``alternate_config_directories``.  Several instances (and
  other test runs) share that file, so it is edited under an exclusive lock,
  appending this instance's dir on start and removing it on stop.
- No syslog: ``maillog_file`` in the instance dir, plus the ``postlog`` service.
- Every service runs without chroot (a chroot would need a copy of /etc and libs).
- ``queue_directory`` and ``data_directory`` are the instance's own, in a runtime dir
  under /tmp that the ``postfix`` user can traverse (pytest's tmp_path is 0700 root);
  it is removed on stop.  Config, certificates and keys stay in tmp_path: Postfix
  reads them as root before dropping privileges.
- Weak keys (RSA-1024) are refused by OpenSSL at Debian's default security level 2;
  ``seclevel0=True`` gives the instance an ``OPENSSL_CONF`` with ``@SECLEVEL=0``
  through ``import_environment`` (Postfix 3.7 has no ``tls_config_file``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from certmgr.interfaces import CertBundle
from tests.peers.util import free_port, require_binary, wait_port

GLOBAL_MAIN_CF = Path("/etc/postfix/main.cf")
_LOCK = Path("/etc/postfix/.certmgr-tests.lock")

_MASTER_CF = """\
{address}:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

_SECLEVEL0_CNF = """\
openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
CipherString = DEFAULT:@SECLEVEL=0
"""


@contextlib.contextmanager
def _global_main_cf() -> Iterator[list[str]]:
    """The alternate_config_directories list of /etc/postfix/main.cf, edited under a lock."""
    _LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not GLOBAL_MAIN_CF.exists():
            GLOBAL_MAIN_CF.write_text("compatibility_level = 3.6\n")
        out = subprocess.run(["postconf", "-h", "alternate_config_directories"], capture_output=True,
                             text=True, check=True).stdout
        dirs = [d for d in out.replace(",", " ").split() if d]
        before = list(dirs)
        yield dirs
        if dirs != before:
            subprocess.run(["postconf", "-e", f"alternate_config_directories = {' '.join(dirs)}"], check=True)


def chain_file_pem(bundle: CertBundle) -> bytes:
    """Key, certificate and chain in one file, as smtpd_tls_chain_files wants."""
    return bundle.key_pem + bundle.cert_pem + bundle.chain_pem


def write_chain_files(cert_dir: Path, bundles: list[CertBundle]) -> list[Path]:
    """One 0600 ``<host>.<alg>.pem`` per bundle, in the layout the postfix deployer writes."""
    files = []
    for b in bundles:
        f = cert_dir / f"{b.hostname}.{b.key_alg}.pem"
        f.write_bytes(chain_file_pem(b))
        f.chmod(0o600)
        files.append(f)
    return files


class PostfixPeer:
    """One private Postfix.  ``chain_files``: what smtpd_tls_chain_files points at."""

    def __init__(self, root: Path, *, hostname: str, banner_host: str | None = None,
                 chain_files: list[Path] | None = None, starttls: bool = True,
                 seclevel0: bool = False, extra_ports: int = 0, extra_main: str = "",
                 extra_master: str = "", address: str = "127.0.0.1", port: int | None = None,
                 resolv_conf: Path | None = None) -> None:
        """``extra_ports``: more smtpd listeners of the same instance (a second ``inet`` line in
        master.cf, as a submission service on 587 would be), in :attr:`ports` after :attr:`port`.
        ``extra_main``/``extra_master``: appended to main.cf / master.cf (transports, maps, client
        TLS settings of a test).  ``address``/``port``: where smtpd listens (a partner MTA: its
        own 127.x address, port 25).  ``resolv_conf``: the instance runs in a mount namespace
        where this file is ``/etc/resolv.conf``, so its SMTP client finds MX records in a test zone."""
        require_binary("postfix")
        self.root = root
        self.config_dir = root / "etc"
        self.run_dir = Path(tempfile.mkdtemp(prefix="certmgr-postfix-"))
        self.run_dir.chmod(0o755)
        self.hostname = hostname
        self.banner_host = banner_host or hostname
        self.chain_files = chain_files or []
        self.starttls = starttls
        self.seclevel0 = seclevel0
        # appended to main.cf / master.cf: transports, maps, client TLS settings of a test
        self.extra_main = extra_main
        self.extra_master = extra_master
        self.address = address
        self.port = port or free_port()
        self.ports = [self.port, *(free_port() for _ in range(extra_ports))]
        self.resolv_conf = resolv_conf
        self.running = False

    @property
    def log(self) -> Path:
        return self.run_dir / "maillog"

    def write_config(self) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        for d in ("queue", "data"):
            (self.run_dir / d).mkdir(exist_ok=True)
        os.chown(self.run_dir / "data", *_postfix_ids())
        env = "MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C"
        if self.seclevel0:
            cnf = self.root / "openssl-seclevel0.cnf"
            cnf.write_text(_SECLEVEL0_CNF)
            env += f" OPENSSL_CONF={cnf}"
        files = ", ".join(map(str, self.chain_files))
        tls = (
            f"smtpd_tls_security_level = may\nsmtpd_tls_chain_files = {files}\n"
            if self.starttls else "smtpd_tls_security_level = none\n"
        )
        (self.config_dir / "main.cf").write_text(
            "compatibility_level = 3.6\n"
            f"queue_directory = {self.run_dir / 'queue'}\n"
            f"data_directory = {self.run_dir / 'data'}\n"
            f"myhostname = {self.hostname}\n"
            f"smtpd_banner = {self.banner_host} ESMTP\n"
            "mydestination =\nalias_maps =\nalias_database =\n"
            "inet_interfaces = 127.0.0.1\n"
            f"inet_protocols = {'all' if ':' in self.address else 'ipv4'}\nmynetworks = 127.0.0.0/8\n"
            f"maillog_file = {self.log}\nmaillog_file_prefixes = {self.run_dir}\n"
            f"import_environment = {env}\n"
            "smtpd_tls_loglevel = 1\n" + tls + self.extra_main
        )
        listen = f"[{self.address}]" if ":" in self.address else self.address  # an IPv6 address in brackets
        extra = "".join(f"{listen}:{p} inet n - n - - smtpd\n" for p in self.ports[1:])
        (self.config_dir / "master.cf").write_text(extra + _MASTER_CF.format(address=listen, port=self.port)
                                                   + self.extra_master)

    def _postfix(self, *args: str) -> None:
        argv = ["postfix", "-c", str(self.config_dir), *args]
        if self.resolv_conf is not None and args == ("start",):
            # the master and every daemon it forks stay in the namespace, so reload/stop from
            # outside still reach them
            argv = ["unshare", "--mount", "sh", "-c",
                    'mount --bind "$0" /etc/resolv.conf && exec "$@"', str(self.resolv_conf), *argv]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"postfix {' '.join(args)} failed: {proc.stderr}{proc.stdout}\n{tail}")

    def start(self) -> PostfixPeer:
        self.write_config()
        with _global_main_cf() as dirs:
            if str(self.config_dir) not in dirs:
                dirs.append(str(self.config_dir))
        try:
            self._postfix("start")
            self.running = True
            for port in self.ports:
                wait_port(port, host=self.address)
        except BaseException:
            self.stop()
            raise
        return self

    def reload(self) -> None:
        self._postfix("reload")

    def stop(self) -> None:
        if self.running:
            self.running = False
            with contextlib.suppress(RuntimeError):
                self._postfix("stop")
        with _global_main_cf() as dirs:
            if str(self.config_dir) in dirs:
                dirs.remove(str(self.config_dir))
        shutil.rmtree(self.run_dir, ignore_errors=True)


def _postfix_ids() -> tuple[int, int]:
    import pwd

    pw = pwd.getpwnam("postfix")
    return pw.pw_uid, pw.pw_gid


def postconf(peer: PostfixPeer, *settings: str) -> None:
    """Change the instance's main.cf (``name = value`` each)."""
    for setting in settings:
        subprocess.run(["postconf", "-c", str(peer.config_dir), "-e", setting], check=True)


def wait_until(predicate: Callable[[], bool], *, timeout: float = 15.0, what: str) -> None:
    """Poll ``predicate``: a Postfix reload reaches new connections only when the
    master has replaced its smtpd processes, a fraction of a second later."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {timeout}s")
        time.sleep(0.1)
