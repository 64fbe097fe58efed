"""A real SMTP server (aiosmtpd) on 127.0.0.1:<free port>, the mailbox of notifier tests.

Clients connect to "localhost", the name in the server certificate.

STARTTLS with a server certificate from a throw-away CA (``ca_file`` is what the
client must trust), optional AUTH PLAIN/LOGIN (only after TLS), and every
received message kept for assertions.  Stoppable and restartable on the same
port, to test a server that goes away and comes back.
"""

from __future__ import annotations

import email
import email.policy
import ssl
import warnings
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.peers.testca import TestCA
from tests.peers.util import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    message: EmailMessage
    tls: bool
    authenticated_as: str | None


def plain_body(message: EmailMessage) -> str:
    """The text/plain body of a received message (the calling test fails if there is none)."""
    part = message.get_body(("plain",))
    assert part is not None, f"no text/plain part in {message['Subject']!r}"
    text: str = part.get_content()
    return text


def make_ca_and_server_cert(directory: Path, hostname: str = "localhost") -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for ``hostname``.

    Returns (ca_file, cert_file, key_file); cert_file holds the leaf and its chain."""
    ca = TestCA("certmgr test SMTP")
    leaf = ca.leaf(hostname, key_type="ecdsa-p256")
    directory.mkdir(parents=True, exist_ok=True)
    ca_file, cert_file, key_file = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca.write_root(ca_file)
    cert_file.write_bytes(leaf.fullchain_pem)
    key_file.touch(mode=0o600)
    key_file.write_bytes(leaf.key_pem)
    return ca_file, cert_file, key_file


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        if self.server.data_reply is not None:
            return self.server.data_reply
        data = envelope.original_content or b""
        parsed = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        self.server.messages.append(Received(
            mail_from=str(envelope.mail_from), rcpt_tos=list(envelope.rcpt_tos), data=data,
            message=parsed,
            # session.ssl is set by STARTTLS only; implicit TLS shows on the transport
            tls=session.ssl is not None or (
                smtp.transport is not None and smtp.transport.get_extra_info("ssl_object") is not None),
            authenticated_as=login.decode() if isinstance(login, bytes) else None,
        ))
        return "250 OK queued"


class SmtpServer:
    """aiosmtpd on 127.0.0.1.  ``starttls=False`` offers no STARTTLS at all;
    ``implicit_tls=True`` speaks TLS from the first byte (like port 465)."""

    def __init__(
        self,
        workdir: Path,
        *,
        starttls: bool = True,
        implicit_tls: bool = False,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.port = free_port()
        self.starttls = starttls
        self.implicit_tls = implicit_tls
        self.username, self.password = username, password
        self.ca_file, self.cert_file, self.key_file = make_ca_and_server_cert(workdir / "smtpd-tls")
        self.messages: list[Received] = []
        self.failed_logins = 0
        #: when set, DATA is answered with this reply (e.g. "451 try later")
        self.data_reply: str | None = None
        self._controller: Controller | None = None

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and self.username is not None
              and auth_data.login == self.username.encode()
              and auth_data.password == (self.password or "").encode())
        if not ok:
            self.failed_logins += 1
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    def start(self) -> None:
        kwargs: dict[str, Any] = {"hostname": "127.0.0.1", "port": self.port}
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        if self.implicit_tls:  # TLS from the first byte, as on port 465
            kwargs.update(ssl_context=ctx)
        elif self.starttls:
            kwargs.update(tls_context=ctx, require_starttls=True)
        if self.username is not None:
            # aiosmtpd counts only STARTTLS as TLS for auth_require_tls; with implicit TLS
            # the whole session is encrypted already.
            kwargs.update(authenticator=self._authenticate, auth_required=True,
                          auth_require_tls=not self.implicit_tls)
            if self.implicit_tls:
                warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
        self._controller = Controller(_Handler(self), server_hostname="localhost", **kwargs)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def notify_toml(self, name: str = "ops", to: str = '"ops@example.com"') -> str:
        """The ``[notify.NAME]`` table of a certmgr.toml that mails through this server to ``to`` (the
        addresses as TOML strings, comma-separated); lines for more keys may follow it."""
        return (f'[notify.{name}]\ntype = "email"\nsmtp = "localhost:{self.port}"\nfrom = "certmgr@example.com"\n'
                f"to = [{to}]\ntimeout = 5\n")

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> SmtpServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
