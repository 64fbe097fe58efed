"""Real mail between private Postfix instances, for tests that read MTA logs.

``MailFlow`` starts three ``PostfixPeer``s on loopback:

- ``mx`` (the server under watch): accepts mail from ``swaks`` with or without
  STARTTLS (inbound sessions) and relays it by recipient domain (outbound):
  ``verified.test`` at ``smtp_tls_security_level = verify`` with the receiver's
  name matched, ``trusted.test`` at ``may`` with the CA trusted, ``untrusted.test``
  at ``may`` with no CA, ``plain.test`` to a receiver without STARTTLS;
- ``tls`` and ``plain``: receivers that discard what they accept.

Each outbound session is logged in ``mx``'s log with the trust level Postfix
saw, and the inbound one in the receiver's log.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.peers.postfix import PostfixPeer, write_chain_files
from tests.peers.testca import TestCA
from tests.peers.util import require_binary

DOMAINS = ("verified.test", "trusted.test", "untrusted.test", "plain.test")
EXPECTED_LEVEL = {"verified.test": "Verified", "trusted.test": "Trusted", "untrusted.test": "Untrusted",
                  "plain.test": "none"}
_DISCARD = "default_transport = discard:\nrelay_transport = discard:\n"


class MailFlow:
    def __init__(self, root: Path) -> None:
        require_binary("swaks")
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.ca = TestCA("mailflow")
        trust = self.ca.write_root(root / "root.pem")
        certs = root / "certs"
        certs.mkdir(parents=True, exist_ok=True)
        rx = write_chain_files(certs, [self.ca.leaf("mx.tls.test")])
        mx = write_chain_files(certs, [self.ca.leaf("mx.watch.test")])
        self.tls = PostfixPeer(root / "tls", hostname="mx.tls.test", chain_files=rx, extra_main=_DISCARD)
        self.plain = PostfixPeer(root / "plain", hostname="mx.plain.test", starttls=False, extra_main=_DISCARD)
        self.mx = PostfixPeer(root / "mx", hostname="mx.watch.test", chain_files=mx)
        self._trust = trust

    def start(self) -> MailFlow:
        self.tls.start()
        self.plain.start()
        t, p = self.tls.port, self.plain.port
        self.mx.extra_main = (
            f"smtp_tls_security_level = may\nsmtp_tls_loglevel = 1\nsmtp_tls_CAfile = {self._trust}\n"
            f"transport_maps = inline:{{ verified.test=smtpv:[127.0.0.1]:{t}, trusted.test=smtp:[127.0.0.1]:{t}, "
            f"untrusted.test=smtpu:[127.0.0.1]:{t}, plain.test=smtp:[127.0.0.1]:{p} }}\n"
        )
        self.mx.extra_master = (
            "smtpv unix - - n - - smtp -o smtp_tls_security_level=verify -o smtp_tls_verify_cert_match=mx.tls.test\n"
            "smtpu unix - - n - - smtp -o smtp_tls_CAfile=\n"
        )
        self.mx.start()
        return self

    def stop(self) -> None:
        for peer in (self.mx, self.tls, self.plain):
            peer.stop()

    def send(self, domain: str, *, starttls: bool, rcpts: int = 1) -> None:
        """One SMTP session into ``mx`` (one message, ``rcpts`` recipients at ``domain``)."""
        cmd = ["swaks", "--server", f"127.0.0.1:{self.mx.port}", "--from", "sender@watch.test",
               "--helo", "client.example", "--to", ",".join(f"u{i}@{domain}" for i in range(rcpts))]
        if starttls:
            cmd.append("--tls")
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"swaks to {domain} failed ({proc.returncode}): {proc.stdout[-1500:]}")

    def wait_delivered(self, count: int, timeout: float = 60.0) -> None:
        """Until ``mx`` has logged ``count`` final deliveries (``status=sent``)."""
        deadline = time.monotonic() + timeout
        while True:
            done = sum(_sent_lines(p) for p in self.mx_logs())
            if done >= count:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"mx delivered {done} of {count} messages in {timeout}s")
            time.sleep(0.2)

    def mx_logs(self) -> list[Path]:
        """The live log and any rotated copies (plain or gzipped)."""
        return sorted(self.mx.log.parent.glob(self.mx.log.name + "*"))


def _sent_lines(path: Path) -> int:
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", errors="replace") as f:
        return sum(1 for line in f if "postfix/smtp[" in line and "status=sent" in line)


class MaildirMailbox:
    """A private Postfix that delivers every mail for ``rcpt`` into ``maildir``
    (Postfix's own ``virtual`` delivery agent, as user ``nobody``)."""

    def __init__(self, root: Path, rcpt: str = "tlsrpt@reports.test") -> None:
        import pwd

        require_binary("swaks")
        self.rcpt = rcpt
        nobody = pwd.getpwnam("nobody")
        self.peer = PostfixPeer(root, hostname="mx.reports.test", starttls=False,
                                extra_master="virtual unix - n n - - virtual\n")
        base = self.peer.run_dir / "vmail"
        base.mkdir()
        os.chown(base, nobody.pw_uid, nobody.pw_gid)
        self.maildir = base / "tlsrpt"
        self.peer.extra_main = (
            f"virtual_mailbox_domains = {rcpt.partition('@')[2]}\nvirtual_mailbox_base = {base}\n"
            f"virtual_mailbox_maps = inline:{{ {rcpt}=tlsrpt/ }}\n"
            f"virtual_uid_maps = static:{nobody.pw_uid}\nvirtual_gid_maps = static:{nobody.pw_gid}\n"
        )

    def start(self) -> MaildirMailbox:
        self.peer.start()
        return self

    def stop(self) -> None:
        self.peer.stop()

    def mail_attachment(self, body: bytes, media_type: str, filename: str) -> None:
        """A report mail as a reporting MTA sends it: the report as a MIME attachment."""
        att = self.peer.root / filename
        att.write_bytes(body)
        cmd = ["swaks", "--server", f"127.0.0.1:{self.peer.port}", "--from", "noreply@reporter.test",
               "--to", self.rcpt, "--header", "Subject: Report Domain: reports.test",
               "--attach-type", media_type, "--attach-name", filename, "--attach", f"@{att}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"swaks failed ({proc.returncode}): {proc.stdout[-1500:]}")

    def wait_messages(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(list((self.maildir / "new").glob("*"))) + len(list((self.maildir / "cur").glob("*"))) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {count} messages in {self.maildir} after {timeout}s")
            time.sleep(0.2)


_EXIM_ROUTES = """queue_only = true
acl_smtp_rcpt = acl_check_rcpt
begin acl
acl_check_rcpt:
  accept
begin routers
verified:
  driver = manualroute
  domains = verified.test
  transport = smtp_verify
  route_list = * 127.0.0.1::{tls}
  self = send
untrusted:
  driver = manualroute
  domains = untrusted.test
  transport = smtp_try
  route_list = * 127.0.0.1::{tls}
  self = send
plain:
  driver = manualroute
  domains = plain.test
  transport = smtp_try
  route_list = * 127.0.0.1::{plain}
  self = send
begin transports
smtp_verify:
  driver = smtp
  allow_localhost
  hosts_require_tls = *
  tls_verify_certificates = {ca}
  tls_verify_hosts = *
  # the route is an address: no name to match (Exim still logs CV=yes for the chain)
  tls_verify_cert_hostnames =
smtp_try:
  driver = smtp
  allow_localhost
  tls_try_verify_hosts = :
"""


class EximFlow:
    """A private Exim as the server under watch, relaying to the Postfix receivers of a
    ``MailFlow`` (``verified.test`` verified, ``untrusted.test`` unverified, ``plain.test``
    without STARTTLS).  Exim queues what it receives; ``deliver()`` runs the queue."""

    def __init__(self, root: Path, flow: MailFlow) -> None:
        from tests.peers.exim import EximPeer

        root.mkdir(parents=True, exist_ok=True)
        self.peer = EximPeer(root, hostname="mx.exim.test", certs=["mx.pem"], keys=["mx.key"])
        leaf = flow.ca.leaf("mx.exim.test")
        (self.peer.cert_dir / "mx.pem").write_bytes(leaf.cert_pem + leaf.chain_pem)
        self.peer.install_key(self.peer.cert_dir / "mx.key", leaf.key_pem)
        ca = self.peer.cert_dir / "ca.pem"
        ca.write_bytes(flow.ca.root_pem)
        self.peer.routes = _EXIM_ROUTES.format(tls=flow.tls.port, plain=flow.plain.port, ca=ca)

    def start(self) -> EximFlow:
        self.peer.start()
        return self

    def stop(self) -> None:
        self.peer.stop()

    def send(self, domain: str, *, starttls: bool) -> None:
        cmd = ["swaks", "--server", f"127.0.0.1:{self.peer.port}", "--from", "sender@exim.test",
               "--helo", "client.example", "--to", f"u@{domain}"]
        if starttls:
            cmd.append("--tls")
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"swaks to {domain} via exim failed ({proc.returncode}): {proc.stdout[-1500:]}")

    def deliver(self) -> None:
        self.peer.run_queue()
