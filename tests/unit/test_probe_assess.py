"""assess() and to_json(): a table of probe results and the status and sentences they give."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from certmgr.pki.names import covers
from certmgr.probe.assess import EXIT_CODES, assess, to_json
from certmgr.probe.client import ProbeResult
from certmgr.probe.facts import ServedCert

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
HOST = "mx1.example.com"
SHA = "ab" * 32

GOOD_CERT = ServedCert(
    subject_cn=HOST, names=(HOST, "mail.example.com"), issuer_cn="R3",
    not_before=NOW - timedelta(days=10), not_after=NOW + timedelta(days=60),
    key_alg="rsa", key_bits=2048, sha256=SHA, serial="1f", self_signed=False,
    chain_valid=True, chain_error=None,
)
GOOD = ProbeResult(target=f"{HOST}:25", protocol="smtp", implicit_tls=False, key_alg=None,
                   banner=f"{HOST} ESMTP", banner_host=HOST, starttls=True, tls_version="TLSv1.3",
                   cipher="TLS_AES_256_GCM_SHA384", certificate=GOOD_CERT)


def cert(**kw: object) -> ProbeResult:
    return dataclasses.replace(GOOD, certificate=dataclasses.replace(GOOD_CERT, **kw))  # type: ignore[arg-type]


CASES = [
    ("good", GOOD, "ok", []),
    ("no starttls", dataclasses.replace(GOOD, starttls=False, certificate=None, tls_version=None),
     "critical", ["STARTTLS is not offered to this client"]),
    ("refused", ProbeResult(target=f"{HOST}:25", protocol="smtp", implicit_tls=False, key_alg=None,
                            error=f"cannot connect to {HOST}:25: connection refused", unreachable=True),
     "unknown", [f"cannot connect to {HOST}:25: connection refused"]),
    ("handshake fails", dataclasses.replace(GOOD, certificate=None, error="TLS handshake with x failed: eof"),
     "critical", ["TLS handshake with x failed: eof"]),
    ("expires in 5 days", cert(not_after=NOW + timedelta(days=5, hours=2)), "critical",
     ["certificate expires in 5 days"]),
    ("expires in 10 days", cert(not_after=NOW + timedelta(days=10, hours=2)), "warning",
     ["certificate expires in 10 days"]),
    ("expires in 21 days is fine", cert(not_after=NOW + timedelta(days=21, hours=2)), "ok", []),
    ("expired", cert(not_after=datetime(2026, 5, 20, tzinfo=UTC)), "critical",
     ["certificate expired on 2026-05-20"]),
    ("not yet valid", cert(not_before=datetime(2026, 6, 3, 8, 0, tzinfo=UTC)), "critical",
     ["certificate is not valid before 2026-06-03 08:00 UTC"]),
    ("self-signed", cert(self_signed=True, chain_valid=False, chain_error="the certificate is self-signed"),
     "critical", ["certificate is self-signed"]),
    ("untrusted", cert(chain_valid=False, chain_error="candidates exhausted"), "critical",
     ["certificate chain does not verify: candidates exhausted"]),
    ("rsa-1024", cert(key_bits=1024), "critical", ["certificate has a weak RSA-1024 key"]),
    ("ecdsa p-256 is fine", cert(key_alg="ecdsa", key_bits=256), "ok", []),
    ("other name", cert(subject_cn="other.example.org", names=("other.example.org",)), "critical",
     [f"certificate does not cover {HOST}"]),
    ("banner differs", dataclasses.replace(GOOD, banner_host="mail.example.net"), "warning",
     [f"banner announces mail.example.net but the certificate covers {HOST}, mail.example.com"]),
    ("banner is an alias", dataclasses.replace(GOOD, banner_host="mail.example.com"), "warning",
     [f"banner announces mail.example.com, not {HOST}"]),
    ("wildcard covers", cert(names=("*.example.com",)), "ok", []),
    ("no CN is fine", cert(subject_cn=None), "ok", []),
]


@pytest.mark.parametrize(("result", "status", "problems"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_assess(result: ProbeResult, status: str, problems: list[str]) -> None:
    got = assess(result, expected_hostname=HOST, managed_sha256s=None, now=NOW)
    assert got == (status, problems)


def test_not_the_managed_certificate_warns() -> None:
    status, problems = assess(GOOD, expected_hostname=HOST, managed_sha256s=["cd" * 32], now=NOW)
    assert status == "warning"
    assert problems == [f"the served certificate (SHA-256 {SHA[:16]}…) is not the one certmgr deployed"]
    assert assess(GOOD, expected_hostname=HOST, managed_sha256s=[SHA.upper()], now=NOW) == ("ok", [])


def test_worst_problem_decides_and_all_are_listed() -> None:
    result = dataclasses.replace(cert(key_bits=1024, not_after=NOW + timedelta(days=15)), banner_host="a.example")
    status, problems = assess(result, expected_hostname=HOST, managed_sha256s=None, now=NOW)
    assert status == "critical" and len(problems) == 3
    assert EXIT_CODES[status] == 2


def test_json_has_the_check_contract_fields() -> None:
    out = to_json(GOOD, expected_hostname="MX1.example.com.", managed_sha256s=[SHA], now=NOW)
    assert out["target"] == f"{HOST}:25" and out["banner_host"] == HOST and out["starttls"] is True
    assert out["tls_version"] == "TLSv1.3"
    assert out["certificate"] == {
        "subject_cn": HOST, "sans": [HOST, "mail.example.com"], "not_after": "2026-07-31T12:00:00Z",
        "days_left": 60, "key_type": "rsa", "key_bits": 2048, "sha256": SHA, "chain_valid": True,
        "name_match": True,
    }
    assert (out["banner_match"], out["matches_managed"], out["status"], out["problems"]) == (True, True, "ok", [])


def test_json_without_certificate() -> None:
    out = to_json(dataclasses.replace(GOOD, starttls=False, certificate=None), expected_hostname=HOST,
                  managed_sha256s=None, now=NOW)
    assert out["certificate"] is None and out["matches_managed"] is None and out["status"] == "critical"


@pytest.mark.parametrize(("sans", "host", "ok"), [
    (("mx1.example.com",), "MX1.Example.com.", True),
    (("*.example.com",), "mx1.example.com", True),
    (("*.example.com",), "a.mx1.example.com", False),
    (("*.example.com",), "example.com", False),
    (("xn--bcher-kva.example",), "bücher.example", True),
    (("mx2.example.com",), "mx1.example.com", False),
])
def test_covers(sans: tuple[str, ...], host: str, ok: bool) -> None:
    assert covers(sans, host) is ok
