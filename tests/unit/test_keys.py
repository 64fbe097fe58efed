"""Keys and CSRs read back: type, size, CN and SAN; atomic 0600 files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from certmgr.errors import StateError
from certmgr.pki.keys import generate_key, key_to_pem, key_type_of, load_key, make_csr
from certmgr.store.files import atomic_write, write_new


@pytest.mark.parametrize(
    "key_type, cls, bits",
    [("rsa-2048", rsa.RSAPrivateKey, 2048), ("rsa-3072", rsa.RSAPrivateKey, 3072),
     ("rsa-4096", rsa.RSAPrivateKey, 4096), ("ecdsa-p256", ec.EllipticCurvePrivateKey, 256),
     ("ecdsa-p384", ec.EllipticCurvePrivateKey, 384)],
)
def test_csr_has_hostname_cn_and_sans(key_type: str, cls: type, bits: int) -> None:
    key = generate_key(key_type)
    assert isinstance(key, cls)
    csr = x509.load_pem_x509_csr(make_csr(key, "mx1.example.com", ("mail.example.com", "mx1.example.com")))
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "mx1.example.com"
    sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["mx1.example.com", "mail.example.com"]
    assert key_type_of(csr.public_key()) == (key_type.split("-")[0], bits)


def test_csr_for_a_hostname_too_long_for_a_cn_has_it_in_the_san_only() -> None:
    long = "mx-" + "a" * 55 + ".example.com"  # 70 characters: valid DNS, more than a CN holds
    csr = x509.load_pem_x509_csr(make_csr(generate_key("ecdsa-p256"), long, ("mx.example.com",)))
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME) == []
    sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [long, "mx.example.com"]
    assert csr.is_signature_valid
    short = x509.load_pem_x509_csr(make_csr(generate_key("ecdsa-p256"), "a" * 52 + ".example.com", ()))
    assert short.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "a" * 52 + ".example.com"


def test_key_file_is_0600_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    pem = key_to_pem(generate_key("ecdsa-p256"))
    write_new(path, pem)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(path)
    with pytest.raises(StateError, match="never overwrites"):
        write_new(path, pem)
    assert [p.name for p in tmp_path.iterdir()] == ["k.pem"], "no temp file left behind"


def test_atomic_write_refuses_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("x")
    link = tmp_path / "key.pem"
    os.symlink(target, link)
    with pytest.raises(StateError, match="symbolic link"):
        atomic_write(link, b"secret")
    assert target.read_text() == "x"


@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 2], lambda b: b.replace(b"M", b"!"), lambda b: b""])
def test_damaged_key_is_a_clear_state_error(tmp_path: Path, damage) -> None:  # type: ignore[no-untyped-def]
    pem = key_to_pem(generate_key("rsa-2048"))
    path = tmp_path / "k.pem"
    path.write_bytes(damage(pem))
    with pytest.raises(StateError, match="damaged") as info:
        load_key(path)
    assert b"PRIVATE" not in str(info.value).encode() and info.value.__cause__ is None
