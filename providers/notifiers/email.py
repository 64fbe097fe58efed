"""E-mail notifier: reminders and alerts over SMTP, with iCalendar invitations.

Needs: an SMTP submission server (``smtp = "host:port"``, port 587 by default;
465 means implicit TLS), ``from`` and ``to``.  TLS is required by default and
the server certificate is verified against the system trust store plus
``[certmgr] trust``; sending in clear text needs an explicit ``tls = "none"``.
Optional AUTH with ``username`` and ``password_file`` / ``password_env``
(never inline, and never sent over an unencrypted connection).

Each message is multipart/alternative text + HTML.  An invitation
(``text/calendar; method=REQUEST|CANCEL``) is added as an alternative part, as
Outlook and Gmail expect, and again as an ``.ics`` attachment, which
Thunderbird and the rest open.
"""

from __future__ import annotations

import base64
import email.policy
import logging
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.message import Message as MimeHeaders
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path
from typing import Self

from certmgr.errors import ConfigError, NotifyError
from certmgr.interfaces import Message, Options, ProviderEnv

log = logging.getLogger("certmgr.notify.email")

SUBMISSION_PORT = 587
IMPLICIT_TLS_PORT = 465
TLS_MODES = ("starttls", "implicit", "none")


@dataclass(frozen=True)
class EmailConfig:
    name: str
    host: str
    port: int
    sender: str
    to: tuple[str, ...]
    tls: str  # starttls | implicit | none
    starttls: bool  # with tls = "none": still use STARTTLS when offered
    tls_verify: bool
    username: str | None
    password: str | None
    timeout: float
    helo: str | None
    trust_file: Path | None


class EmailNotifier:
    description = "E-mail over SMTP (STARTTLS or implicit TLS, optional AUTH) with calendar invitations"

    def __init__(self, config: EmailConfig) -> None:
        self.config = config

    @classmethod
    def from_config(cls, name: str, options: Options, env: ProviderEnv) -> Self:
        host, port = _parse_hostport(options.str("smtp"), options)
        sender = _address(options.str("from"), "from", options)
        to = tuple(_address(a, "to", options) for a in options.str_list("to"))
        if not to:
            raise ConfigError("needs at least one address", table=options.where, key="to")
        default_tls = "implicit" if port == IMPLICIT_TLS_PORT else "starttls"
        tls = options.str("tls", default_tls, choices=TLS_MODES)
        starttls = options.bool("starttls", True)
        if not starttls and tls != "none":
            raise ConfigError(
                'starttls = false would send mail in clear text; also set tls = "none" to confirm that',
                table=options.where, key="starttls",
            )
        tls_verify = options.bool("tls_verify", True)
        username = options.str("username", None)
        password = options.secret("password", required=False)
        if username and not password:
            raise ConfigError("username is set but no password_file or password_env",
                              table=options.where, key="password_file")
        if password and not username:
            raise ConfigError("a password is set but no username", table=options.where, key="username")
        timeout = options.float("timeout", 30.0, min=1.0)
        helo = options.str("helo", None)
        options.finish()
        if tls == "none":
            log.warning("[notify.%s]: tls = \"none\": mail to %s may travel in clear text", name, host)
        if not tls_verify:
            log.warning("[notify.%s]: tls_verify = false: the certificate of %s is not checked, "
                        "anyone on the path can read the mail", name, host)
        return cls(EmailConfig(name, host, port, sender, to, tls, starttls, tls_verify, username,
                               password, timeout, helo, env.trust_file))

    @property
    def destinations(self) -> frozenset[str]:
        """The recipients, as ``mailto:`` addresses (lower case)."""
        return frozenset(f"mailto:{parseaddr(a)[1].lower()}" for a in self.config.to)

    # ----------------------------------------------------------------------

    def send(self, message: Message) -> None:
        c = self.config
        where = f"[notify.{c.name}] SMTP server {c.host}:{c.port}"
        mail = build_email(message, c.sender, c.to)
        try:
            with self._open() as smtp:
                self._secure(smtp, where)
                if c.username and c.password:
                    _login(smtp, c.username, c.password, where)
                refused = smtp.send_message(mail)
        except NotifyError:
            raise
        except smtplib.SMTPAuthenticationError as e:
            raise NotifyError(f"{where} refused the login of {c.username!r} ({_reply(e)}); check "
                              "username and the password file/variable") from e
        except smtplib.SMTPRecipientsRefused as e:
            rejected = "; ".join(f"{a}: {_reply_tuple(r)}" for a, r in e.recipients.items())
            raise NotifyError(f"{where} refused every recipient ({rejected}); check `to`") from e
        except smtplib.SMTPSenderRefused as e:
            raise NotifyError(f"{where} refused the sender {c.sender} ({_reply(e)}); check `from` "
                              "and whether this account may send as it") from e
        except smtplib.SMTPResponseException as e:
            kind = "temporarily" if 400 <= e.smtp_code < 500 else "permanently"
            raise NotifyError(f"{where} {kind} refused the message ({_reply(e)})") from e
        except ssl.SSLCertVerificationError as e:
            raise NotifyError(f"{where}: its TLS certificate is not trusted ({e.verify_message}); fix "
                              "the server certificate or add its CA to [certmgr] trust") from e
        except ssl.SSLError as e:
            raise NotifyError(f"{where}: TLS failed ({e.reason or e}); check tls/port "
                              "(465 = implicit TLS, 587/25 = STARTTLS)") from e
        except (smtplib.SMTPException, OSError) as e:
            raise NotifyError(f"{where}: cannot deliver ({e.__class__.__name__}: {e}); check that the "
                              "server is up and reachable and that `smtp` is the right host:port") from e
        for addr, reply in refused.items():
            log.warning("%s refused recipient %s: %s", where, addr, _reply_tuple(reply))

    def _open(self) -> smtplib.SMTP:
        c = self.config
        helo = c.helo or socket.getfqdn()
        if c.tls == "implicit":
            return smtplib.SMTP_SSL(c.host, c.port, local_hostname=helo, timeout=c.timeout,
                                    context=self._ssl_context())
        return smtplib.SMTP(c.host, c.port, local_hostname=helo, timeout=c.timeout)

    def _secure(self, smtp: smtplib.SMTP, where: str) -> None:
        """Upgrade to TLS, or refuse to go on in clear text unless the config says so."""
        c = self.config
        smtp.ehlo()
        if c.tls == "implicit":
            return
        if c.starttls and smtp.has_extn("starttls"):
            smtp.starttls(context=self._ssl_context())
            smtp.ehlo()
            return
        if c.tls == "starttls":
            raise NotifyError(
                f"{where} does not offer STARTTLS; certmgr refuses to send mail in clear text. "
                'Enable STARTTLS on the server, or set tls = "none" to allow clear text'
            )
        if c.username:
            raise NotifyError(f"{where}: no TLS, and certmgr never sends a password in clear text; "
                              "enable STARTTLS on the server or use port 465")
        log.warning("%s: sending without TLS (tls = \"none\")", where)

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        if self.config.trust_file is not None:
            ctx.load_verify_locations(cafile=str(self.config.trust_file))
        if not self.config.tls_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


def _login(smtp: smtplib.SMTP, username: str, password: str, where: str) -> None:
    if not smtp.has_extn("auth"):
        raise NotifyError(f"{where} does not offer AUTH; remove username/password_* or enable "
                          "AUTH on the server")
    if (username + password).isascii():
        smtp.login(username, password)
        return
    # smtplib encodes credentials as ASCII; RFC 4616 AUTH PLAIN carries UTF-8.
    if "PLAIN" not in smtp.esmtp_features.get("auth", "").upper().split():
        raise NotifyError(f"{where}: the username or password is not ASCII, which needs AUTH PLAIN, "
                          "and the server does not offer it")
    token = base64.b64encode(b"\0" + username.encode() + b"\0" + password.encode()).decode("ascii")
    code, reply = smtp.docmd("AUTH", "PLAIN " + token)
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, reply)


#: headers are folded only past 998 characters (RFC 5322's hard limit): at 78, Python moves a
#: subject that just overflows onto a continuation line whole, and mail filters matching
#: "Subject: [certmgr] ..." then see a leading space
_POLICY = email.policy.default.clone(max_line_length=998)


def build_email(message: Message, sender: str, to: tuple[str, ...]) -> EmailMessage:
    """The MIME message: text + HTML alternatives, invitations, attachments."""
    mail = EmailMessage(policy=_POLICY)
    mail["Subject"] = message.subject
    mail["From"] = sender
    mail["To"] = ", ".join(to)
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    # RFC 3834: keeps vacation responders from answering a robot
    mail["Auto-Submitted"] = "auto-generated"
    mail["X-Certmgr-Severity"] = message.severity
    if message.hostname:
        mail["X-Certmgr-Host"] = message.hostname
    if message.severity == "critical":
        mail["Importance"] = "high"
    mail.set_content(message.text)
    inline = [a for a in message.attachments if a.content_id and message.html]
    if message.html:
        mail.add_alternative(message.html, subtype="html")
        if inline:  # the HTML part becomes multipart/related: the HTML, then the images it shows
            html_part = mail.get_body(("html",))
            assert isinstance(html_part, EmailMessage)
            for att in inline:
                maintype, _, subtype = _content_type(att.content_type)[0].partition("/")
                html_part.add_related(att.data, maintype=maintype, subtype=subtype, cid=f"<{att.content_id}>",
                                      filename=att.filename, disposition="inline")

    plain = []
    for att in message.attachments:
        if any(att is a for a in inline):
            continue
        ctype, params = _content_type(att.content_type)
        method = params.get("method", "").upper()
        if ctype == "text/calendar" and method in ("REQUEST", "CANCEL", "PUBLISH"):
            # Inside the alternative: what Outlook and Gmail show as an invitation.
            mail.add_alternative(att.data.decode("utf-8"), subtype="calendar",
                                 params={"method": method})
            plain.append((att.filename, "application/ics", att.data))
        else:
            plain.append((att.filename, ctype, att.data))
    # Attachments last: adding one turns the message into multipart/mixed,
    # after which no alternative can be added.
    for filename, ctype, data in plain:
        maintype, _, subtype = ctype.partition("/")
        mail.add_attachment(data, maintype=maintype, subtype=subtype or "octet-stream", filename=filename)
    return mail


def _content_type(value: str) -> tuple[str, dict[str, str]]:
    headers = MimeHeaders()
    headers["Content-Type"] = value
    params = {str(k).lower(): str(v) for k, v in headers.get_params(failobj=[])[1:]}
    return headers.get_content_type(), params


def _parse_hostport(value: str, options: Options) -> tuple[str, int]:
    host, port_text = value, ""
    if value.startswith("["):  # [IPv6]:port
        host, _, rest = value[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
    if not host:
        raise ConfigError(f"{value!r} is not host:port", table=options.where, key="smtp")
    if not port_text:
        return host, SUBMISSION_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"{value!r}: bad port {port_text!r}", table=options.where, key="smtp")
    return host, int(port_text)


def _address(value: str, key: str, options: Options) -> str:
    """One address as it will go into the header and the envelope, or a ConfigError now
    (not a crash when the first message is due)."""
    def bad(why: str) -> ConfigError:
        return ConfigError(f"{value!r} is not an e-mail address: {why}", table=options.where, key=key)

    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise bad("it holds a line break or another control character")
    _, addr = parseaddr(value)
    if "@" not in addr:
        raise bad("write it as user@domain or Name <user@domain>")
    try:
        parsed = _POLICY.header_factory("To", value)
        addresses = getattr(parsed, "addresses", ())
    except (ValueError, TypeError, IndexError) as e:  # what the header parser refuses
        raise bad(str(e)) from e
    if len(addresses) != 1 or getattr(parsed, "defects", None):
        raise bad("give one address per list item" if len(addresses) > 1 else "it does not parse as one address")
    if not addr.isascii():
        raise bad("the address itself must be ASCII (a non-ASCII name may stand before <user@domain>)")
    return value


def _reply(e: smtplib.SMTPResponseException) -> str:
    return _reply_tuple((e.smtp_code, e.smtp_error))


def _reply_tuple(reply: tuple[int, bytes | str]) -> str:
    code, text = reply
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {text}"
