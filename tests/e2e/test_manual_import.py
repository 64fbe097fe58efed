"""The manual-CA flow through the CLI: `csr`, then `import` of good and of bad certificates.

A refused import exits 2 with the reason and leaves the state directory and the
database byte for byte as they were.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.e2e.conftest import Cli
from tests.peers.testca import TestCA
from tests.peers.util import state_fingerprint

HOST, ALIAS = "mx1.example.com", "mail.example.com"
SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH


@pytest.fixture
def cli(tmp_path: Path, ca: TestCA) -> Cli:
    path = tmp_path / "certmgr.toml"
    path.write_text(f"""
[certmgr]
state_dir = "{tmp_path / 'state'}"
trust = "{ca.write_root(tmp_path / 'root.pem')}"

[issuer.corp]
type = "manual"

[[mta]]
hostname = "{HOST}"
names = ["{ALIAS}"]
key = ["rsa-2048", "ecdsa-p256"]
issuer = "corp"
""")
    return Cli(path)


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA("import test")


def sign(ca: TestCA, public_key: object, names: list[str], *, cn: str | None = HOST,
         start: datetime | None = None, days: float = 90, eku: x509.ObjectIdentifier | None = SERVER_AUTH,
         is_ca: bool = False, signer: object = None) -> bytes:
    """A leaf as the CA's intermediate signs it (or, with ``signer``, another key under its name)."""
    start = start or datetime.now(UTC) - timedelta(hours=1)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.inter.subject)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        # RFC 5280: the SAN is critical when the subject is empty (as CAs issue them)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=cn is None)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.inter_key.public_key()),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
    cert = builder.sign(signer or ca.inter_key, hashes.SHA256())  # type: ignore[arg-type]
    return cert.public_bytes(serialization.Encoding.PEM)


def csr_keys(cli: Cli) -> dict[str, x509.CertificateSigningRequest]:
    out = cli("csr", HOST).stdout.encode()
    csrs = [x509.load_pem_x509_csr(b"-----BEGIN" + part) for part in out.split(b"-----BEGIN")[1:]]
    return {("rsa" if isinstance(c.public_key(), rsa.RSAPublicKey) else "ecdsa"): c for c in csrs}


def snapshot(root: Path) -> dict[str, str]:
    return state_fingerprint(root)


def test_csr_is_stable_and_names_match(cli: Cli) -> None:
    first, second = csr_keys(cli), csr_keys(cli)
    assert set(first) == {"rsa", "ecdsa"}
    for alg, csr in first.items():
        assert csr.public_key() == second[alg].public_key(), "running csr twice gives the same key"
        assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == HOST
        assert csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
            .get_values_for_type(x509.DNSName) == [HOST, ALIAS]


def test_good_import_then_status(cli: Cli, ca: TestCA, tmp_path: Path) -> None:
    csrs = csr_keys(cli)
    good = tmp_path / "good.pem"
    good.write_bytes(sign(ca, csrs["rsa"].public_key(), [HOST, ALIAS]) + ca.chain_pem)
    out = cli("import", HOST, str(good)).stdout
    assert "imported serial" in out
    rows = {r["key_type"]: r for r in cli.json("status", "--json")}
    assert rows["rsa"]["serial"] and rows["rsa"]["state"] == "issued"
    assert rows["ecdsa"]["serial"] is None
    # ECDSA with no CN (as some ACME profiles issue): recorded, not refused
    ec_cert = tmp_path / "ec.pem"
    ec_cert.write_bytes(sign(ca, csrs["ecdsa"].public_key(), [HOST, ALIAS], cn=None) + ca.chain_pem)
    cli("import", HOST, str(ec_cert))
    assert all(r["serial"] for r in cli.json("status", "--json"))
    # the same file again is refused
    assert "already imported" in cli("import", HOST, str(good), check=2).stderr


def _other_key() -> object:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()


def _weak_key() -> object:
    return rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()


BAD: dict[str, tuple[Callable[[TestCA, x509.CertificateSigningRequest], bytes], str]] = {
    "wrong key": (lambda ca, csr: sign(ca, _other_key(), [HOST, ALIAS]) + ca.chain_pem,
                  "does not match the private key"),
    "missing name": (lambda ca, csr: sign(ca, csr.public_key(), [HOST]) + ca.chain_pem, f"missing: {ALIAS}"),
    "extra name": (lambda ca, csr: sign(ca, csr.public_key(), [HOST, ALIAS, "evil.example.net"]) + ca.chain_pem,
                   "not configured: evil.example.net"),
    "expired": (lambda ca, csr: sign(ca, csr.public_key(), [HOST, ALIAS],
                                     start=datetime.now(UTC) - timedelta(days=100)) + ca.chain_pem, "expired on"),
    "not yet valid": (lambda ca, csr: sign(ca, csr.public_key(), [HOST, ALIAS],
                                           start=datetime.now(UTC) + timedelta(days=2)) + ca.chain_pem,
                      "not valid yet"),
    "weak key": (lambda ca, csr: sign(ca, _weak_key(), [HOST, ALIAS]) + ca.chain_pem, "RSA-1024"),
    "garbage": (lambda ca, csr: b"hello, this is not a certificate\n", "not a PEM certificate"),
    "der": (lambda ca, csr: x509.load_pem_x509_certificate(sign(ca, csr.public_key(), [HOST, ALIAS]))
            .public_bytes(serialization.Encoding.DER), "is DER"),
    "wrong order": (lambda ca, csr: ca.chain_pem + sign(ca, csr.public_key(), [HOST, ALIAS]), "not in order"),
    "empty": (lambda ca, csr: b"", "is empty"),
    "damaged pem": (lambda ca, csr: sign(ca, csr.public_key(), [HOST, ALIAS])[:300] + b"\n-----END CERTIFICATE-----\n",
                    "damaged"),
    "with private key": (lambda ca, csr: sign(ca, csr.public_key(), [HOST, ALIAS]) +
                         b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "private key"),
    "other CN": (lambda ca, csr: sign(ca, csr.public_key(), [HOST, ALIAS], cn="www.example.com") + ca.chain_pem,
                 "subject CN www.example.com"),
    "leaf without its intermediate": (lambda ca, csr: sign(ca, csr.public_key(), [HOST, ALIAS]),
                                      "without the intermediate that issued it"),
    "untrusted root": (lambda ca, csr: _untrusted(csr), "which is not trusted"),
    "wrong intermediate": (lambda ca, csr: sign(ca, csr.public_key(), [HOST, ALIAS]) + OTHER.chain_pem,
                           "not in order"),
    "right issuer name, wrong key": (lambda ca, csr: sign(ca, csr.public_key(), [HOST, ALIAS],
                                                          signer=OTHER.inter_key) + ca.chain_pem, "not in order"),
    "no serverAuth": (lambda ca, csr: sign(ca, csr.public_key(), [HOST, ALIAS],
                                           eku=ExtendedKeyUsageOID.CLIENT_AUTH) + ca.chain_pem, "EKU"),
    "CA:TRUE leaf": (lambda ca, csr: sign(ca, csr.public_key(), [HOST, ALIAS], is_ca=True) + ca.chain_pem,
                     "basicConstraints.cA"),
}
#: another CA whose root nobody trusts, with an intermediate of the same name as the trusted one
OTHER: TestCA = TestCA("import test")


def _untrusted(csr: x509.CertificateSigningRequest) -> bytes:
    return sign(OTHER, csr.public_key(), [HOST, ALIAS]) + OTHER.chain_pem + OTHER.root_pem


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_import_refused_and_state_untouched(cli: Cli, ca: TestCA, tmp_path: Path, case: str) -> None:
    csr = csr_keys(cli)["rsa"]
    make, expect = BAD[case]
    bad = tmp_path / "bad.pem"
    bad.write_bytes(make(ca, csr))
    before = snapshot(tmp_path / "state")
    r = cli("import", HOST, str(bad), check=2)
    assert expect in r.stderr, r.stderr
    assert HOST in r.stderr
    assert snapshot(tmp_path / "state") == before, "a refused import changes nothing"


def test_self_signed_refused(cli: Cli, ca: TestCA, tmp_path: Path) -> None:
    csr_keys(cli)
    bundle = ca.leaf(HOST, (ALIAS,), self_signed=True)
    bad = tmp_path / "self.pem"
    bad.write_bytes(bundle.cert_pem)
    # the key differs too; the refusal must come before anything is stored either way
    r = cli("import", HOST, str(bad), check=2)
    assert "does not match" in r.stderr or "self-signed" in r.stderr


def test_import_without_csr_first(cli: Cli, ca: TestCA, tmp_path: Path) -> None:
    f = tmp_path / "c.pem"
    f.write_bytes(sign(ca, _other_key(), [HOST, ALIAS]) + ca.chain_pem)
    assert "run `certmgr csr" in cli("import", HOST, str(f), check=2).stderr


def test_manual_certificates_are_not_renewed_automatically(cli: Cli) -> None:
    out = cli.json("renew", "--json")
    assert {o["action"] for o in out} == {"manual"}


def test_leaf_alone_is_completed_from_a_known_intermediate(cli: Cli, ca: TestCA, tmp_path: Path) -> None:
    csrs = csr_keys(cli)
    full = tmp_path / "rsa.pem"
    full.write_bytes(sign(ca, csrs["rsa"].public_key(), [HOST, ALIAS]) + ca.chain_pem)
    cli("import", HOST, str(full))
    # the intermediate is known now (it came with the RSA certificate): an ECDSA leaf alone is completed
    alone = tmp_path / "ec.pem"
    alone.write_bytes(sign(ca, csrs["ecdsa"].public_key(), [HOST, ALIAS]))
    cli("import", HOST, str(alone))
    chains = sorted((tmp_path / "state" / "certs" / HOST).glob("*/*/chain.pem"))
    assert len(chains) == 2 and all(c.read_bytes() == ca.chain_pem for c in chains), chains


def test_reimport_with_the_chain_completes_it(cli: Cli, ca: TestCA, tmp_path: Path) -> None:
    """A certificate stored without its chain (as older versions of certmgr did) gets it by
    importing the same certificate again with the chain: not "already imported"."""
    leaf = sign(ca, csr_keys(cli)["rsa"].public_key(), [HOST, ALIAS])
    full = tmp_path / "full.pem"
    full.write_bytes(leaf + ca.chain_pem)
    cli("import", HOST, str(full))
    (chain,) = (tmp_path / "state" / "certs" / HOST / "rsa").glob("*/chain.pem")
    chain.write_bytes(b"")  # the state an import of the bare leaf left before chains were verified
    chain.with_name("fullchain.pem").write_bytes(leaf)
    serial = cli.json("status", "--json")[0]["serial"]
    out = cli("import", HOST, str(full)).stdout
    assert "now has its chain" in out, out
    row = next(r for r in cli.json("status", "--json") if r["key_type"] == "rsa")
    assert row["serial"] == serial
    chains = {p.read_bytes() for p in (tmp_path / "state" / "certs" / HOST / "rsa").glob("*/chain.pem")}
    assert ca.chain_pem in chains
    assert "already imported" in cli("import", HOST, str(full), check=2).stderr


def test_shorter_lived_certificate_does_not_replace_a_longer_one(cli: Cli, ca: TestCA, tmp_path: Path) -> None:
    key = csr_keys(cli)["rsa"].public_key()
    long_, short = tmp_path / "long.pem", tmp_path / "short.pem"
    long_.write_bytes(sign(ca, key, [HOST, ALIAS], days=90) + ca.chain_pem)
    short.write_bytes(sign(ca, key, [HOST, ALIAS], days=2 / 24 + 1 / 24) + ca.chain_pem)
    cli("import", HOST, str(long_))
    serial = cli.json("status", "--json")[0]["serial"]
    before = snapshot(tmp_path / "state")
    err = cli("import", HOST, str(short), check=2).stderr
    assert "before the current certificate" in err and "--force" in err, err
    assert snapshot(tmp_path / "state") == before
    cli("import", "--force", HOST, str(short))
    assert cli.json("status", "--json")[0]["days_left"] == 0
    # the longer-lived one can go back
    cli("import", HOST, str(long_))
    assert cli.json("status", "--json")[0]["serial"] == serial


@pytest.fixture
def acme_cli(tmp_path: Path, ca: TestCA) -> Cli:
    """An MTA whose issuer is ACME (never contacted here: csr and import do not talk to the CA)."""
    path = tmp_path / "acme.toml"
    path.write_text(f"""
[certmgr]
state_dir = "{tmp_path / 'state'}"
trust = "{ca.write_root(tmp_path / 'root.pem')}"

[issuer.le]
type = "acme"
directory = "https://acme.invalid/directory"
challenge = {{ type = "http-01", mode = "standalone", port = 8080 }}

[[mta]]
hostname = "{HOST}"
names = ["{ALIAS}"]
key = "rsa-2048"
issuer = "le"
""")
    return Cli(path)


def test_manual_flow_on_an_acme_mta_needs_force(acme_cli: Cli, ca: TestCA, tmp_path: Path) -> None:
    acme_cli("status")
    before = snapshot(tmp_path / "state")
    err = acme_cli("csr", HOST, check=2).stderr
    assert "acme issuer le" in err and "--force" in err, err
    assert snapshot(tmp_path / "state") == before, "no pending key is created"
    csr = x509.load_pem_x509_csr(acme_cli("csr", "--force", HOST).stdout.encode())
    cert = tmp_path / "other-ca.pem"
    cert.write_bytes(sign(ca, csr.public_key(), [HOST, ALIAS]) + ca.chain_pem)
    assert "--force" in acme_cli("import", HOST, str(cert), check=2).stderr
    acme_cli("import", "--force", HOST, str(cert))
    row = acme_cli.json("status", "--json")[0]
    assert row["issuer"] == "import", "the store says what really issued it, not the ACME issuer"
    err = acme_cli("revoke", HOST, check=2).stderr
    assert "CN=import test intermediate" in err and "ask that CA" in err, err


def test_chain_with_the_root_is_stored_without_it(cli: Cli, ca: TestCA, tmp_path: Path) -> None:
    """Clients must find the root in their own store: a root sent along is dropped, the
    intermediate kept (what was verified is what is deployed)."""
    f = tmp_path / "with-root.pem"
    f.write_bytes(sign(ca, csr_keys(cli)["rsa"].public_key(), [HOST, ALIAS]) + ca.chain_pem + ca.root_pem)
    cli("import", HOST, str(f))
    (chain,) = (tmp_path / "state" / "certs" / HOST / "rsa").glob("*/chain.pem")
    assert chain.read_bytes() == ca.chain_pem
    assert chain.with_name("fullchain.pem").read_bytes().endswith(ca.chain_pem)


def test_status_says_expired_once_the_certificate_has_expired(cli: Cli, ca: TestCA, tmp_path: Path) -> None:
    from certmgr.config.load import load_config
    from certmgr.lifecycle.inventory import status_rows
    from certmgr.runtime import Runtime

    f = tmp_path / "c.pem"
    f.write_bytes(sign(ca, csr_keys(cli)["rsa"].public_key(), [HOST, ALIAS], days=1) + ca.chain_pem)
    cli("import", HOST, str(f))
    rt = Runtime(load_config(cli.config))
    try:
        now = datetime.now(UTC)
        assert next(r for r in status_rows(rt, now) if r["key_type"] == "rsa")["state"] == "issued"
        later = next(r for r in status_rows(rt, now + timedelta(days=1)) if r["key_type"] == "rsa")
        assert later["state"] == "expired" and later["days_left"] < 0, later
    finally:
        rt.close()
