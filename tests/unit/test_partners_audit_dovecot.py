"""The Dovecot audit's judgment of 2.3 and 2.4 settings (names differ between them)."""

from __future__ import annotations

from certmgr.partners.audit import audit_dovecot


def _texts(settings: dict[str, str]) -> list[str]:
    return [f.text for f in audit_dovecot(settings, where="imap1", managed=["/c/imap.rsa.crt"])]


def test_dovecot_24_cleartext_and_cert_file_names() -> None:
    assert _texts({"ssl": "yes", "auth_allow_cleartext": "yes", "ssl_server_cert_file": "/c/other.crt"}) == [
        "imap1 accepts passwords over connections without TLS (auth_allow_cleartext = yes, ssl = yes): set "
        "auth_allow_cleartext = no, or ssl = required",
        "imap1 serves /c/other.crt, not the file certmgr manages (/c/imap.rsa.crt): renewals will not reach it"]
    assert _texts({"ssl": "required", "auth_allow_cleartext": "yes", "ssl_server_cert_file": "/c/imap.rsa.crt"}) == []


def test_dovecot_23_defaults_are_clean() -> None:
    assert _texts({"ssl": "yes", "disable_plaintext_auth": "yes", "ssl_min_protocol": "TLSv1.2",
                   "ssl_cert": "</c/imap.rsa.crt", "ssl_alt_cert": ""}) == []
    assert _texts({"ssl": "yes", "disable_plaintext_auth": "no", "ssl_cert": "</c/imap.rsa.crt"})[0].startswith(
        "imap1 accepts passwords over connections without TLS (disable_plaintext_auth = no, ssl = yes)")
