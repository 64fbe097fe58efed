"""``certmgr audit``: is opportunistic TLS really on, for everyone, in each managed MTA?

Pure judgments of an MTA's *effective* settings (Postfix ``postconf -x NAME…``,
Exim ``exim -bP``, Dovecot ``doveconf -n``), read by the deployers, plus the
certificates the settings name.  One sentence per finding:

- inbound TLS not offered to everyone (security level none/empty, STARTTLS
  discarded from EHLO for some or all clients, ``tls_advertise_hosts`` not ``*``);
- outbound opportunistic TLS off;
- SSLv2/SSLv3/TLSv1/TLSv1.1 still allowed;
- the served certificate file is not the one certmgr manages;
- the 220 banner does not announce the MTA hostname;
- a certificate presented as an SMTP *client* certificate without the clientAuth
  EKU (public CAs stopped including it in 2026, so the partner may reject it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from certmgr.pki.names import comparable_name
from certmgr.probe.assess import CRITICAL, WARNING

PROTOCOLS = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
OBSOLETE = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1")

#: what the Postfix audit reads, with defaults expanded (``postconf -x NAME…``)
POSTFIX_SETTINGS = (
    "myhostname", "smtpd_banner", "smtpd_tls_security_level", "smtpd_use_tls", "smtpd_enforce_tls",
    "smtpd_discard_ehlo_keywords", "smtpd_discard_ehlo_keyword_address_maps", "smtp_tls_security_level",
    "smtp_use_tls", "smtp_enforce_tls", "smtpd_tls_protocols", "smtp_tls_mandatory_protocols",
    "smtpd_tls_chain_files", "smtpd_tls_cert_file", "smtpd_tls_eccert_file", "smtp_tls_cert_file",
    "smtp_tls_chain_files",
)

Reader = Callable[[str], bytes | None]


@dataclass(frozen=True)
class Finding:
    severity: str  # warning | critical
    text: str


def parse_settings(output: str) -> dict[str, str]:
    """``name = value`` lines (postconf, exim -bP, doveconf) → dict; continuation lines joined."""
    out: dict[str, str] = {}
    last: str | None = None
    for line in output.splitlines():
        if line[:1].isspace() and last is not None:
            out[last] += " " + line.strip()
            continue
        name, sep, value = line.partition("=")
        if sep and name.strip() and " " not in name.strip():
            last = name.strip()
            out[last] = value.strip()
    return out


def _files(value: str) -> list[str]:
    return [f for f in re.split(r"[\s,]+", value) if f]


def postfix_protocols(value: str) -> set[str]:
    """Protocols a Postfix ``*_tls_protocols`` value allows: ``!SSLv3, !TLSv1`` or ``>=TLSv1.2``."""
    allowed = set(PROTOCOLS)
    for word in _files(value.replace(":", " ")):
        if word.startswith(">="):
            floor = word[2:]
            if floor in PROTOCOLS:
                allowed &= set(PROTOCOLS[PROTOCOLS.index(floor):])
        elif word.startswith("<="):
            ceiling = word[2:]
            if ceiling in PROTOCOLS:
                allowed &= set(PROTOCOLS[:PROTOCOLS.index(ceiling) + 1])
        elif word.startswith("!"):
            allowed.discard(word[1:])
    # SSLv2 is gone from OpenSSL 1.1+; SSLv3 is not built into Debian's OpenSSL 3
    return allowed - {"SSLv2"}


def client_auth_problem(pem: bytes, path: str, where: str) -> str | None:
    """Why the certificate at ``path`` will not do as an SMTP client certificate (None when it will)."""
    try:
        cert = x509.load_pem_x509_certificates(pem)[0]
    except (ValueError, IndexError):
        return None  # a key or an unreadable file: not this check's business
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None  # no EKU extension: any use is allowed
    if ExtendedKeyUsageOID.CLIENT_AUTH in eku:
        return None
    return (f"{where} presents {path} as its SMTP client certificate, but that certificate lacks the TLS client "
            "authentication EKU (public CAs dropped it in 2026): partners that check client certificates will "
            "reject it; stop presenting it or use a certificate issued for client authentication")


def audit_postfix(s: Mapping[str, str], *, where: str, hostname: str, managed: Sequence[str],
                  read: Reader) -> list[Finding]:
    """Findings for one Postfix from its effective settings (``POSTFIX_SETTINGS``)."""
    found: list[Finding] = []
    level = s.get("smtpd_tls_security_level", "").strip()
    if level in ("", "none") and s.get("smtpd_use_tls", "no") != "yes" and s.get("smtpd_enforce_tls", "no") != "yes":
        found.append(Finding(CRITICAL, f"{where} does not offer STARTTLS (smtpd_tls_security_level = "
                                       f"{level or 'empty'}): inbound mail arrives in plain text"))
    discard = s.get("smtpd_discard_ehlo_keywords", "")
    if "starttls" in discard.lower().replace(",", " ").split():
        found.append(Finding(CRITICAL, f"{where} hides STARTTLS from every client (smtpd_discard_ehlo_keywords = "
                                       f"{discard})"))
    if s.get("smtpd_discard_ehlo_keyword_address_maps", "").strip():
        found.append(Finding(WARNING, f"{where} may hide EHLO keywords such as STARTTLS from some clients "
                                      f"(smtpd_discard_ehlo_keyword_address_maps = "
                                      f"{s['smtpd_discard_ehlo_keyword_address_maps']}); check that STARTTLS is "
                                      "offered to every client"))
    out = s.get("smtp_tls_security_level", "").strip()
    if out in ("", "none") and s.get("smtp_use_tls", "no") != "yes" and s.get("smtp_enforce_tls", "no") != "yes":
        found.append(Finding(CRITICAL, f"{where} sends without TLS (smtp_tls_security_level = {out or 'empty'}): set "
                                       "it to may for opportunistic TLS"))
    # inbound, and outbound where TLS is enforced; not smtp_tls_protocols: refusing an old
    # protocol under opportunistic TLS sends that mail in plain text, which is worse
    for name in ("smtpd_tls_protocols", "smtp_tls_mandatory_protocols"):
        old = [p for p in OBSOLETE if p in postfix_protocols(s.get(name, ""))]
        if old:
            found.append(Finding(WARNING, f"{where} still allows {', '.join(old)} ({name} = {s.get(name) or 'empty'})"
                                          f"; use >=TLSv1.2"))
    served = _files(s.get("smtpd_tls_chain_files", "")) or _files(s.get("smtpd_tls_cert_file", "") + " "
                                                                    + s.get("smtpd_tls_eccert_file", ""))
    found += _served_problems(where, served, managed)
    found += _banner_problem(where, s.get("smtpd_banner", ""), hostname)
    for name in ("smtp_tls_chain_files", "smtp_tls_cert_file"):
        for path in _files(s.get(name, "")):
            pem = read(path)
            problem = client_auth_problem(pem, path, where) if pem else None
            if problem:
                found.append(Finding(WARNING, problem))
    return found


def _served_problems(where: str, served: Sequence[str], managed: Sequence[str]) -> list[Finding]:
    if not managed:
        return []
    if not served:
        return [Finding(CRITICAL, f"{where} serves no certificate file")]
    strangers = [f for f in served if f not in managed]
    if strangers:
        return [Finding(CRITICAL, f"{where} serves {', '.join(strangers)}, not the file certmgr manages "
                                  f"({', '.join(managed)}): renewals will not reach it")]
    return []


def _banner_problem(where: str, banner: str, hostname: str) -> list[Finding]:
    words = banner.split()
    if not words or comparable_name(words[0]) != comparable_name(hostname):
        return [Finding(WARNING, f"{where} greets with '220 {banner}', not its hostname {hostname}")]
    return []


def exim_protocols(openssl_options: str) -> set[str]:
    """Protocols Exim allows given ``openssl_options`` (``+no_tlsv1 +no_tlsv1_1``)."""
    allowed = set(PROTOCOLS) - {"SSLv2", "SSLv3"}  # Exim's defaults include +no_sslv2 +no_sslv3
    for word in openssl_options.split():
        flag = word.lstrip("+-").lower()
        for proto in PROTOCOLS:
            if flag != "no_" + proto.lower().replace(".", "_"):
                continue
            if word.startswith("-"):
                allowed.add(proto)
            else:
                allowed.discard(proto)
    return allowed


def audit_exim(s: Mapping[str, str], transports: Mapping[str, Mapping[str, str]], *, where: str,
               hostname: str, managed: Sequence[str], read: Reader) -> list[Finding]:
    """Findings for one Exim from ``exim -bP`` (main options) and ``exim -bP transport NAME``."""
    found: list[Finding] = []
    advertise = s.get("tls_advertise_hosts", "").strip()
    if advertise in ("", ":"):
        found.append(Finding(CRITICAL, f"{where} does not offer STARTTLS (tls_advertise_hosts is empty)"))
    elif advertise != "*":
        found.append(Finding(WARNING, f"{where} offers STARTTLS only to some clients (tls_advertise_hosts = "
                                      f"{advertise}); set it to *"))
    old = [p for p in OBSOLETE if p in exim_protocols(s.get("openssl_options", ""))]
    if old:
        found.append(Finding(WARNING, f"{where} still allows {', '.join(old)} (openssl_options = "
                                      f"{s.get('openssl_options') or 'empty'}); add +no_tlsv1 +no_tlsv1_1"))
    found += _served_problems(where, [f.strip() for f in s.get("tls_certificate", "").split(":") if f.strip()],
                              managed)
    primary = s.get("primary_hostname", "")
    banner = s.get("smtp_banner", "")
    for var in ("$smtp_active_hostname", "${smtp_active_hostname}", "$primary_hostname", "${primary_hostname}"):
        banner = banner.replace(var, primary)
    found += _banner_problem(where, banner, hostname)
    for name, t in transports.items():
        if t.get("driver") != "smtp":
            continue
        if t.get("hosts_avoid_tls", "").strip() == "*":
            found.append(Finding(CRITICAL, f"{where} transport {name} sends without TLS (hosts_avoid_tls = *)"))
        for path in [f.strip() for f in t.get("tls_certificate", "").split(":") if f.strip()]:
            pem = read(path)
            problem = client_auth_problem(pem, path, f"{where} transport {name}") if pem else None
            if problem:
                found.append(Finding(WARNING, problem))
    return found


#: what the Dovecot audit reads (``doveconf NAME…``; 2.3 and 2.4 names, the unknown ones are left out)
DOVECOT_SETTINGS = ("ssl", "disable_plaintext_auth", "auth_allow_cleartext", "ssl_min_protocol", "ssl_cert",
                    "ssl_alt_cert", "ssl_server_cert_file")


def audit_dovecot(s: Mapping[str, str], *, where: str, managed: Sequence[str]) -> list[Finding]:
    """Findings for one Dovecot from its effective settings (``DOVECOT_SETTINGS``, 2.3 or 2.4)."""
    found: list[Finding] = []
    ssl = s.get("ssl", "yes")
    if ssl == "no":
        found.append(Finding(CRITICAL, f"{where} does not offer TLS (ssl = no)"))
    # 2.3: disable_plaintext_auth (default yes); 2.4: auth_allow_cleartext (default no)
    if "auth_allow_cleartext" in s:
        cleartext, setting = s["auth_allow_cleartext"] == "yes", "auth_allow_cleartext = yes"
        fix = "auth_allow_cleartext = no"
    else:
        cleartext, setting = s.get("disable_plaintext_auth", "yes") == "no", "disable_plaintext_auth = no"
        fix = "disable_plaintext_auth = yes"
    if cleartext and ssl != "required":
        found.append(Finding(CRITICAL, f"{where} accepts passwords over connections without TLS ({setting}, "
                                       f"ssl = {ssl}): set {fix}, or ssl = required"))
    floor = s.get("ssl_min_protocol", "TLSv1.2")
    if floor in PROTOCOLS and PROTOCOLS.index(floor) < PROTOCOLS.index("TLSv1.2"):
        found.append(Finding(WARNING, f"{where} still allows {floor} and later (ssl_min_protocol = {floor}); use "
                                      "TLSv1.2"))
    served = [v.lstrip("<").strip() for k, v in s.items()
              if k in ("ssl_cert", "ssl_alt_cert", "ssl_server_cert_file") and v]
    found += _served_problems(where, served, managed)
    return found


def starttls_problem(where: str, protocol: str, offered: bool, unreachable: bool, error: str | None) -> Finding | None:
    """What a probe of a STARTTLS port found wrong (None: STARTTLS offered)."""
    if unreachable:
        return Finding(WARNING, f"{where} cannot be probed: {error}")
    if not offered:
        return Finding(CRITICAL, f"{where} does not offer STARTTLS on {protocol.upper()}: clients that connect there "
                                 "log in and read mail in plain text")
    return None
