"""The pure audit judgments: protocol settings, Exim and Dovecot effective settings."""

from __future__ import annotations

import pytest

from certmgr.partners.audit import audit_dovecot, audit_exim, exim_protocols, parse_settings, postfix_protocols
from tests.peers.testca import TestCA


@pytest.mark.parametrize(("value", "allowed"), [
    ("", {"SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"}),
    ("!SSLv2, !SSLv3", {"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"}),
    (">=TLSv1.2", {"TLSv1.2", "TLSv1.3"}),
    ("!SSLv2:!SSLv3:!TLSv1:!TLSv1.1", {"TLSv1.2", "TLSv1.3"}),
    (">=TLSv1 <=TLSv1.2", {"TLSv1", "TLSv1.1", "TLSv1.2"}),
])
def test_postfix_protocols(value: str, allowed: set[str]) -> None:
    assert postfix_protocols(value) == allowed


def test_exim_protocols() -> None:
    assert exim_protocols("") == {"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"}
    assert exim_protocols("+no_tlsv1 +no_tlsv1_1 +no_sslv3") == {"TLSv1.2", "TLSv1.3"}
    assert exim_protocols("+no_tlsv1 -no_tlsv1") == {"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"}


def test_parse_settings_joins_continuations() -> None:
    assert parse_settings("a = 1\nb = x,\n    y\nnot a setting\nc =\n") == {"a": "1", "b": "x, y", "c": ""}


def test_exim_findings() -> None:
    ca = TestCA()
    pem = ca.leaf("mx1.example.test").cert_pem
    main = {"tls_advertise_hosts": "127.0.0.1", "openssl_options": "+no_sslv2", "tls_certificate": "/x/other.crt",
            "smtp_banner": "mx1.example.test ESMTP Exim"}
    transports = {"remote_smtp": {"driver": "smtp", "hosts_avoid_tls": "*", "tls_certificate": "/x/client.crt"},
                  "local": {"driver": "appendfile"}}
    texts = [f.text for f in audit_exim(main, transports, where="exim mx1", hostname="mx1.example.test",
                                        managed=["/x/mx1.crt"], read={"/x/client.crt": pem}.get)]
    assert texts == [
        "exim mx1 offers STARTTLS only to some clients (tls_advertise_hosts = 127.0.0.1); set it to *",
        "exim mx1 still allows TLSv1, TLSv1.1 (openssl_options = +no_sslv2); add +no_tlsv1 +no_tlsv1_1",
        "exim mx1 serves /x/other.crt, not the file certmgr manages (/x/mx1.crt): renewals will not reach it",
        "exim mx1 transport remote_smtp sends without TLS (hosts_avoid_tls = *)",
        "exim mx1 transport remote_smtp presents /x/client.crt as its SMTP client certificate, but that certificate "
        "lacks the TLS client authentication EKU (public CAs dropped it in 2026): partners that check client "
        "certificates will reject it; stop presenting it or use a certificate issued for client authentication",
    ]
    clean = {**main, "tls_advertise_hosts": "*", "openssl_options": "+no_tlsv1 +no_tlsv1_1",
             "tls_certificate": "/x/mx1.crt"}
    assert audit_exim(clean, {}, where="exim mx1", hostname="mx1.example.test", managed=["/x/mx1.crt"],
                      read=lambda p: None) == []


def test_dovecot_findings() -> None:
    texts = [f.text for f in audit_dovecot({"ssl": "no", "ssl_min_protocol": "TLSv1", "ssl_cert": "</x/a.crt"},
                                           where="dovecot imap1", managed=["/x/b.crt"])]
    assert texts == ["dovecot imap1 does not offer TLS (ssl = no)",
                     "dovecot imap1 still allows TLSv1 and later (ssl_min_protocol = TLSv1); use TLSv1.2",
                     "dovecot imap1 serves /x/a.crt, not the file certmgr manages (/x/b.crt): renewals will not "
                     "reach it"]
