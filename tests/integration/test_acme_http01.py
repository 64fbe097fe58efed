"""ACME issuance over HTTP-01 against a real pebble that validates for real."""

from __future__ import annotations

import concurrent.futures as cf
import functools
import http.server
import itertools
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from certmgr.errors import ChallengeError, PermanentError
from certmgr.interfaces import CertRequest, IssuedCertificate
from tests.peers.pebble import AccountStore, Pebble, make_csr, make_issuer, running_pebble

pytestmark = pytest.mark.integration

_seq = itertools.count()


def names_for(prefix: str) -> list[str]:
    # unique names per issuance: pebble 2.4 reuses valid authorizations across orders,
    # and a test should prove a fresh validation
    n = next(_seq)
    return [f"{prefix}{n}.example.test", f"alt{n}.{prefix}.example.test"]


def request_for(names: list[str], key_type: str = "ecdsa-p256") -> CertRequest:
    return CertRequest(
        hostname=names[0], names=tuple(names), key_type=key_type, csr_pem=make_csr(names, key_type)[1]
    )


def issuer_table(pebble: Pebble, **challenge: Any) -> dict[str, Any]:
    ch = {"type": "http-01", "address": "127.0.0.1", "port": pebble.http_port, **challenge}
    return {
        "directory": pebble.directory_url,
        "ca_bundle": str(pebble.ca_bundle),
        "contact": ["mailto:postmaster@example.test"],
        "challenge": ch,
        "timeout": 60,
    }


def check_issued(pebble: Pebble, issued: IssuedCertificate, req: CertRequest) -> x509.Certificate:
    certs = x509.load_pem_x509_certificates(issued.fullchain_pem)
    assert len(certs) >= 2, "full chain must carry the intermediate"
    leaf = certs[0]
    cn = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if cn:  # some profiles leave CN out; pebble's default keeps it
        assert cn[0].value == req.hostname
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(san.get_values_for_type(x509.DNSName)) == sorted(req.names)
    root = x509.load_pem_x509_certificate(pebble.root_pem())
    inter = x509.load_pem_x509_certificate(pebble.intermediate_pem())
    assert certs[1] == inter
    leaf.verify_directly_issued_by(inter)
    inter.verify_directly_issued_by(root)
    csr = x509.load_pem_x509_csr(req.csr_pem)
    assert leaf.public_key() == csr.public_key()
    return leaf


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    with running_pebble(tmp_path_factory.mktemp("pebble")) as p:
        yield p


@pytest.fixture
def issuer(pebble: Pebble, tmp_path: Path) -> Iterator[Any]:
    iss = make_issuer(issuer_table(pebble), tmp_path)
    yield iss
    iss.close()


@pytest.mark.parametrize("key_type", ["rsa-2048", "ecdsa-p256"])
def test_standalone_issues_and_chain_verifies(pebble: Pebble, issuer: Any, key_type: str) -> None:
    store = AccountStore()
    steps: list[tuple[str, dict[str, str]]] = []
    req = request_for(names_for("mx"), key_type)
    issued = issuer.issue(req, store.context(req.hostname, steps=steps))
    check_issued(pebble, issued, req)
    assert store.saves == 1 and store.record.uri
    kinds = [s for s, _ in steps]
    assert kinds[0] == "order_created" and steps[0][1]["order_url"] == issued.order_url
    assert kinds.count("challenge_answered") == 2
    assert {d["type"] for s, d in steps if s == "challenge_answered"} == {"http-01"}
    assert kinds[-3:] == ["finalized", "order_valid", "certificate_downloaded"]


def test_account_is_reused_from_store(pebble: Pebble, tmp_path: Path) -> None:
    store = AccountStore()
    first = make_issuer(issuer_table(pebble), tmp_path)
    req = request_for(names_for("reuse"))
    first.issue(req, store.context(req.hostname))
    first.close()
    second = make_issuer(issuer_table(pebble), tmp_path)
    req2 = request_for(names_for("reuse"))
    check_issued(pebble, second.issue(req2, store.context(req2.hostname)), req2)
    second.close()
    assert store.saves == 1


def test_resume_valid_order_downloads_without_new_order(pebble: Pebble, issuer: Any) -> None:
    store = AccountStore()
    req = request_for(names_for("resume"))
    first = issuer.issue(req, store.context(req.hostname))
    steps: list[tuple[str, dict[str, str]]] = []
    again = issuer.issue(req, store.context(req.hostname, steps=steps, resume_order_url=first.order_url))
    assert again.order_url == first.order_url
    assert "order_created" not in [s for s, _ in steps]
    assert again.fullchain_pem == first.fullchain_pem


def test_webroot_mode(pebble: Pebble, tmp_path: Path) -> None:
    webroot = tmp_path / "www"
    webroot.mkdir()
    seen_modes: list[int] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            path = webroot / self.path.lstrip("/")
            if path.exists():
                seen_modes.append(stat.S_IMODE(path.stat().st_mode))
            super().do_GET()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", pebble.http_port), functools.partial(Handler, directory=str(webroot))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        table = issuer_table(pebble)
        table["challenge"] = {"type": "http-01", "mode": "webroot", "webroot": str(webroot)}
        iss = make_issuer(table, tmp_path)
        req = request_for(names_for("web"))
        check_issued(pebble, iss.issue(req, AccountStore().context(req.hostname)), req)
    finally:
        server.shutdown()
        server.server_close()
    assert seen_modes and all(m == 0o644 for m in seen_modes)
    # answers are removed after validation
    assert list((webroot / ".well-known" / "acme-challenge").iterdir()) == []


def test_unreachable_answer_is_a_challenge_error(pebble: Pebble, tmp_path: Path) -> None:
    # the solver listens on another port than the one pebble checks
    table = issuer_table(pebble)
    from tests.peers.util import free_port

    table["challenge"]["port"] = free_port()
    iss = make_issuer(table, tmp_path)
    req = request_for(names_for("fail"))
    try:
        with pytest.raises(ChallengeError) as err:
            iss.issue(req, AccountStore().context(req.hostname))
    finally:
        iss.close()
    text = str(err.value)
    assert "http-01" in text and (req.names[0] in text or req.names[1] in text)
    assert "127.0.0.1" in text


def test_revoke_reported_by_pebble(pebble: Pebble, issuer: Any) -> None:
    store = AccountStore()
    req = request_for(names_for("revoke"))
    issued = issuer.issue(req, store.context(req.hostname))
    leaf = x509.load_pem_x509_certificates(issued.fullchain_pem)[0]
    assert pebble.cert_status(leaf.serial_number) == "Valid"
    issuer.revoke(issued.fullchain_pem, 4, store.context(req.hostname))
    assert pebble.cert_status(leaf.serial_number) == "Revoked"


def test_renewal_info_absent_in_pebble(pebble: Pebble, issuer: Any) -> None:
    store = AccountStore()
    req = request_for(names_for("ari"))
    issued = issuer.issue(req, store.context(req.hostname))
    assert issuer.renewal_info(issued.fullchain_pem, store.context(req.hostname)) is None


def test_twenty_concurrent_on_one_instance(pebble: Pebble, issuer: Any) -> None:
    store = AccountStore()
    reqs = [request_for(names_for("conc")) for _ in range(20)]
    warm = request_for(names_for("warm"))
    t0 = time.monotonic()
    issuer.issue(warm, store.context(warm.hostname))
    one = time.monotonic() - t0
    t0 = time.monotonic()
    with cf.ThreadPoolExecutor(20) as ex:
        results = list(ex.map(lambda r: issuer.issue(r, store.context(r.hostname)), reqs))
    wall = time.monotonic() - t0
    print(f"\none certificate: {one:.2f}s wall; 20 concurrent: {wall:.2f}s wall")
    for req, issued in zip(reqs, results, strict=True):
        check_issued(pebble, issued, req)
    assert store.saves == 1, "one account for all threads"
    # generous bound for a shared 2-core machine; the figures are printed above
    assert wall < 15


def test_pebble_restart_reregisters(tmp_path: Path) -> None:
    with running_pebble(tmp_path / "pebble") as p:
        iss = make_issuer(issuer_table(p), tmp_path)
        store = AccountStore()
        req = request_for(names_for("restart"))
        iss.issue(req, store.context(req.hostname))
        first_uri = store.record.uri
        first_key = store.record.key_pem
        p.restart()
        req2 = request_for(names_for("restart"))
        check_issued(p, iss.issue(req2, store.context(req2.hostname)), req2)
        iss.close()
        assert store.saves == 2
        assert store.record.key_pem == first_key, "same key registered again"
        assert store.record.uri and first_uri


def test_bad_nonces_are_retried(tmp_path: Path) -> None:
    with running_pebble(tmp_path / "pebble", env={"PEBBLE_WFE_NONCEREJECT": "30"}) as p:
        iss = make_issuer(issuer_table(p), tmp_path)
        store = AccountStore()
        try:
            for _ in range(10):
                req = request_for(names_for("nonce"))
                check_issued(p, iss.issue(req, store.context(req.hostname)), req)
        finally:
            iss.close()


def test_profile_not_offered_is_permanent(pebble: Pebble, tmp_path: Path) -> None:
    iss = make_issuer({**issuer_table(pebble), "profile": "shortlived"}, tmp_path)
    req = request_for(names_for("profile"))
    with pytest.raises(PermanentError) as err:
        iss.issue(req, AccountStore().context(req.hostname))
    iss.close()
    assert "shortlived" in str(err.value) and "offered: none" in str(err.value)
