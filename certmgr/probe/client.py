"""STARTTLS probe: connect as an anonymous outsider and report what the server presents.

The probe never verifies during the handshake (it must see bad certificates too);
it records what was served and judges the chain afterwards
(:mod:`certmgr.probe.facts`).  :func:`certmgr.probe.assess.assess` turns a
result into a monitoring status and plain sentences.

SMTP (STARTTLS on 25/587, implicit TLS on 465), IMAP (STARTTLS on 143,
implicit TLS on 993) and POP3 (STLS on 110, implicit TLS on 995) are supported.
``key_alg`` makes a server holding an RSA and an ECDSA certificate serve one of them: TLS 1.2 is the ceiling and only
ECDHE ciphers authenticated by that algorithm are offered.
"""

from __future__ import annotations

import functools
import re
import socket
import ssl
import warnings
from dataclasses import dataclass
from pathlib import Path

from certmgr.probe.facts import ServedCert, certificate_facts

#: ports where TLS starts at connect time when ``implicit_tls`` is None (auto)
IMPLICIT_TLS_PORTS = frozenset({465, 993, 995})

_KEY_ALG_CIPHERS = {"rsa": "ECDHE+aRSA", "ecdsa": "ECDHE+aECDSA"}
_DOMAIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
                     r"[A-Za-z0-9])?)*\.?$")


@dataclass(frozen=True)
class ProbeResult:
    target: str  # "host:port"
    protocol: str  # "smtp" | "imap" | "pop3"
    implicit_tls: bool
    key_alg: str | None
    #: the server's greeting (first line), None when nothing was read
    banner: str | None = None
    #: the FQDN the SMTP 220 greeting announces
    banner_host: str | None = None
    #: STARTTLS offered (always True for implicit TLS once connected)
    starttls: bool = False
    tls_version: str | None = None
    cipher: str | None = None
    certificate: ServedCert | None = None
    leaf_der: bytes | None = None
    chain_der: tuple[bytes, ...] = ()
    #: why the probe could not complete: connection refused, timeout, handshake failure
    error: str | None = None
    #: True when the error happened before any TLS (the service is unreachable)
    unreachable: bool = False


class _ProtocolError(Exception):
    pass


class _Lines:
    """Line reader over a socket (plain or TLS) with a hard cap per line."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def readline(self) -> str:
        while b"\n" not in self.buf:
            if len(self.buf) > 8192:
                raise _ProtocolError("the server sent an overlong line")
            data = self.sock.recv(4096)
            if not data:
                raise _ProtocolError("the server closed the connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def smtp_reply(self) -> tuple[int, list[str]]:
        lines: list[str] = []
        while True:
            line = self.readline()
            if len(line) < 3 or not line[:3].isdigit():
                raise _ProtocolError(_not_smtp(line))
            lines.append(line[4:])
            if len(line) == 3 or line[3] != "-":
                return int(line[:3]), lines

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode("ascii") + b"\r\n")


def _not_smtp(line: str) -> str:
    """What a non-SMTP greeting is, and the config that probes it properly."""
    for prefix, what, name in (("* OK", "an IMAP server", "imap"), ("+OK", "a POP3 server", "pop3")):
        if line.upper().startswith(prefix):
            return (f"this is {what}, not SMTP (it greets with {line[:40]!r}): set protocol = \"{name}\" "
                    f"(or \"{name}s\" for implicit TLS) on the [[mta]] to probe it as one")
    return f"not an SMTP reply: {line[:80]!r}"


def _banner_host(greeting: str) -> str | None:
    words = greeting.split()
    if words and _DOMAIN.match(words[0]) and "." in words[0]:
        return words[0].rstrip(".").lower()
    return None


def _client_context(key_alg: str | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    # Security level 0 so weak keys and old protocols are seen and reported, not hidden
    # behind a handshake failure.
    ciphers = _KEY_ALG_CIPHERS[key_alg] if key_alg else "DEFAULT"
    ctx.set_ciphers(f"{ciphers}:@SECLEVEL=0")
    with warnings.catch_warnings():
        # deprecated for clients that trust; this one reports, so it must see old servers too
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
    if key_alg:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _served_chain(tls: ssl.SSLSocket) -> tuple[bytes, ...]:
    # Public from Python 3.13; the same method exists privately since 3.10.
    obj = getattr(tls, "_sslobj", None)
    getter = getattr(tls, "get_unverified_chain", None) or getattr(obj, "get_unverified_chain", None)
    if getter is None:
        return ()
    return tuple(c.public_bytes(ssl._ssl.ENCODING_DER) for c in (getter() or []))  # type: ignore[attr-defined]


def _smtp_greeting(lines: _Lines) -> str:
    code, text = lines.smtp_reply()
    if code != 220:
        raise _ProtocolError(f"the server greets with {code} {text[0] if text else ''}".strip())
    return text[0] if text else ""


def _smtp_starttls(lines: _Lines, ehlo_name: str) -> bool:
    lines.send(f"EHLO {ehlo_name}")
    code, ext = lines.smtp_reply()
    if code != 250:
        raise _ProtocolError(f"EHLO refused with {code}")
    if not any(e.upper().split()[:1] == ["STARTTLS"] for e in ext):
        return False
    lines.send("STARTTLS")
    code, text = lines.smtp_reply()
    if code != 220:
        raise _ProtocolError(f"STARTTLS offered but refused with {code} {' '.join(text)}")
    return True


def _imap_starttls(lines: _Lines, greeting: str) -> bool:
    caps = greeting.upper()
    lines.send("a1 CAPABILITY")
    while True:
        line = lines.readline()
        caps += " " + line.upper()
        if line.startswith("a1 "):
            break
    if "STARTTLS" not in caps.split() and "STARTTLS]" not in caps:
        return False
    lines.send("a2 STARTTLS")
    while True:
        line = lines.readline()
        if line.startswith("a2 "):
            if not line.upper().startswith("A2 OK"):
                raise _ProtocolError(f"STARTTLS offered but refused: {line}")
            return True


def _imap_greeting(lines: _Lines) -> str:
    line = lines.readline()
    if not line.upper().startswith("* OK"):
        raise _ProtocolError(f"not an IMAP greeting: {line[:80]!r}")
    return line


def _pop3_greeting(lines: _Lines) -> str:
    line = lines.readline()
    if not line.upper().startswith("+OK"):
        raise _ProtocolError(f"not a POP3 greeting: {line[:80]!r}")
    return line


def _pop3_stls(lines: _Lines) -> bool:
    """RFC 2595: STLS is listed by CAPA (a multi-line answer ending with ".")."""
    lines.send("CAPA")
    caps: list[str] = []
    if lines.readline().upper().startswith("+OK"):
        while (line := lines.readline()) != ".":
            caps.append(line.upper())
    if "STLS" not in caps:
        return False
    lines.send("STLS")
    line = lines.readline()
    if not line.upper().startswith("+OK"):
        raise _ProtocolError(f"STLS offered but refused: {line}")
    return True


_GREETINGS = {"smtp": _smtp_greeting, "imap": _imap_greeting, "pop3": _pop3_greeting}


def probe(
    host: str,
    port: int,
    *,
    protocol: str = "smtp",
    implicit_tls: bool | None = False,
    servername: str | None = None,
    ehlo_name: str = "certmgr-probe.invalid",
    trust_file: Path | None = None,
    timeout: float = 10.0,
    key_alg: str | None = None,
) -> ProbeResult:
    """Probe ``host:port``; never raises for what the server does (errors are in the result)."""
    if protocol not in _GREETINGS:
        raise ValueError(f"unknown probe protocol {protocol!r}")
    if key_alg not in (None, "rsa", "ecdsa"):
        raise ValueError(f"key_alg must be rsa or ecdsa, not {key_alg!r}")
    implicit = port in IMPLICIT_TLS_PORTS if implicit_tls is None else implicit_tls
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"  # an IPv6 address in brackets
    result = functools.partial(ProbeResult, target, protocol, implicit, key_alg)
    # servername "" sends no SNI at all (how most SMTP senders connect): the server's default
    sni = (servername or None) if servername is not None else (host if not _is_ip(host) else None)
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as e:
        return result(error=f"cannot connect to {target}: {_reason(e)}", unreachable=True)
    greeting: str | None = None
    starttls = implicit
    try:
        with raw:
            sock: socket.socket = raw
            if not implicit:
                lines = _Lines(raw)
                greeting = _GREETINGS[protocol](lines)
                if protocol == "smtp":
                    starttls = _smtp_starttls(lines, ehlo_name)
                elif protocol == "imap":
                    starttls = _imap_starttls(lines, greeting)
                else:
                    starttls = _pop3_stls(lines)
                if not starttls:
                    lines.send("a3 LOGOUT" if protocol == "imap" else "QUIT")
                    return result(banner=greeting, banner_host=_smtp_host(protocol, greeting))
            try:
                tls = _client_context(key_alg).wrap_socket(sock, server_hostname=sni)
            except (ssl.SSLError, OSError) as e:
                return result(banner=greeting, banner_host=_smtp_host(protocol, greeting),
                                   starttls=starttls,
                                   error=f"TLS handshake with {target} failed: {_reason(e)}")
            with tls:
                leaf = tls.getpeercert(binary_form=True)
                chain = _served_chain(tls)
                version, cipher = tls.version(), (tls.cipher() or (None,))[0]
                if implicit:
                    tlines = _Lines(tls)
                    greeting = _GREETINGS[protocol](tlines)
                _goodbye(tls, protocol)
    except (OSError, _ProtocolError) as e:
        # no reply at all (reset, timeout) says nothing about TLS: unknown; a refusal or garbage
        # from a listening server is a finding
        silent = greeting is None and isinstance(e, OSError)
        return result(banner=greeting, banner_host=_smtp_host(protocol, greeting),
                      starttls=starttls, error=f"{target}: {_reason(e)}", unreachable=silent)
    facts = certificate_facts(leaf, chain, trust_file=trust_file) if leaf else None
    return result(
        banner=greeting, banner_host=_smtp_host(protocol, greeting), starttls=True,
        tls_version=version, cipher=cipher, certificate=facts, leaf_der=leaf, chain_der=chain,
        error=None if leaf else f"{target} presented no certificate",
    )


def _goodbye(tls: ssl.SSLSocket, protocol: str) -> None:
    # A polite end keeps the MTA's log free of "lost connection" noise; failures don't matter.
    try:
        tls.sendall(b"a9 LOGOUT\r\n" if protocol == "imap" else b"QUIT\r\n")
    except OSError:
        pass


def _smtp_host(protocol: str, greeting: str | None) -> str | None:
    return _banner_host(greeting) if protocol == "smtp" and greeting is not None else None


def _is_ip(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return False
    return True


def _reason(e: BaseException) -> str:
    if isinstance(e, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(e, ssl.SSLError):
        return e.reason or str(e)
    if isinstance(e, OSError) and e.strerror:
        return e.strerror.lower()
    return str(e)
