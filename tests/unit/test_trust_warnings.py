"""A trust anchor with a non-positive serial (some system roots, pebble's root now and then) is
loaded without a library warning reaching the person running `check`, also when many probe
threads load the anchors at once."""

from __future__ import annotations

import base64
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID


def serial_zero_pem() -> bytes:
    """A self-signed CA certificate whose serial is 0 (builders refuse it: made with serial 1,
    then the one byte changed)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "serial zero root")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    der = cert.public_bytes(Encoding.DER)
    version_then_serial = bytes.fromhex("a003020102020101")  # v3, then a one-byte serial 1 ...
    start = der.index(version_then_serial[:5])
    assert der[start:start + 8] == version_then_serial
    der = der[:start + 7] + b"\x00" + der[start + 8:]  # ... made 0 (the signature no longer matters)
    body = base64.encodebytes(der).decode().replace("\n", "")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return ("-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n").encode()


def test_a_serial_zero_anchor_loads_quietly_from_many_threads(tmp_path: Path) -> None:
    trust = tmp_path / "trust.pem"
    trust.write_bytes(serial_zero_pem())
    script = f"""
import os, threading
from pathlib import Path
from certmgr.pki.trust import load_trust_file, _load_anchors
def load():
    for i in range(20):
        _load_anchors.cache_clear()
        assert load_trust_file(Path({str(trust)!r}))[0].serial_number == 0
threads = [threading.Thread(target=load) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
print("loaded")
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "loaded", r.stderr
    assert "serial number" not in r.stderr, r.stderr
