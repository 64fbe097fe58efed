"""No private key, EAB HMAC key or TSIG secret ever leaves the files that hold them.

A full run against a real pebble with external account binding: RSA and ECDSA certificates,
a CSR for a manual CA, a renewal that fails (its challenge is answered where the CA does not
look), status and renew as tables and as JSON, all with -v logging.  Then everything
certmgr wrote is scanned: stdout and stderr of every command, every table of the database
(dumped as SQL text) and its raw files, and every file of the state dir except the key files
themselves.  No "PRIVATE KEY" marker, no base64 line of any key, and neither secret may appear.
"""

from __future__ import annotations

import base64
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.pebble import Pebble, running_pebble
from tests.peers.util import free_port

pytestmark = pytest.mark.integration

KID = "kid-leak-test"
HMAC = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
TSIG = base64.b64encode(os.urandom(32)).decode()


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    with running_pebble(tmp_path_factory.mktemp("pebble-leak"), eab_keys={KID: HMAC}) as p:
        yield p


def issuer(name: str, p: Pebble, challenge: str, eab: Path) -> str:
    return f"""
[issuer.{name}]
type = "acme"
directory = "{p.directory_url}"
ca_bundle = "{p.ca_bundle}"
contact = ["mailto:postmaster@example.com"]
eab_kid = "{KID}"
eab_hmac_key_file = "{eab}"
timeout = 60
challenge = {challenge}
"""


def write_config(tmp_path: Path, p: Pebble) -> Path:
    eab = tmp_path / "secrets" / "eab.key"
    tsig = tmp_path / "secrets" / "tsig.key"
    eab.parent.mkdir(mode=0o700)
    eab.write_text(HMAC + "\n")
    tsig.write_text(f'key "acme-update." {{\n\talgorithm hmac-sha256;\n\tsecret "{TSIG}";\n}};\n')
    http = f'{{ type = "http-01", mode = "standalone", address = "127.0.0.1", port = {p.http_port} }}'
    # answered on a port pebble never checks: that renewal fails
    wrong = f'{{ type = "http-01", mode = "standalone", address = "127.0.0.1", port = {free_port()} }}'
    dns = f'{{ type = "dns-01", provider = "rfc2136", server = "127.0.0.1:{free_port()}", tsig_key_file = "{tsig}" }}'
    path = tmp_path / "certmgr.toml"
    path.write_text(f"""
[certmgr]
state_dir = "{tmp_path / 'state'}"
{issuer("pebble", p, http, eab)}
{issuer("broken", p, wrong, eab)}
{issuer("dns", p, dns, eab)}
[issuer.corp]
type = "manual"

[[mta]]
hostname = "mx1.example.com"
names = ["mail.example.com"]
key = ["rsa-2048", "ecdsa-p256"]
issuer = "pebble"

[[mta]]
hostname = "mx2.example.com"
key = "ecdsa-p384"
issuer = "pebble"

[[mta]]
hostname = "mx3.example.com"
key = "rsa-3072"
issuer = "broken"

[[mta]]
hostname = "mx4.example.com"
key = "rsa-2048"
issuer = "corp"
""")
    return path


def run_all(config: Path) -> list[tuple[str, subprocess.CompletedProcess[str]]]:
    env = {k: v for k, v in os.environ.items() if k != "CERTMGR_CONFIG"}
    steps = [
        (["validate"], 0),
        (["-v", "renew", "--json"], 1),  # mx3 fails
        (["-v", "renew"], 0),  # nothing due, mx3 waiting
        (["-v", "renew", "--force", "mx3.example.com", "--json"], 1),
        (["-v", "renew", "--force", "mx2.example.com"], 0),
        (["-v", "csr", "mx4.example.com"], 0),
        (["-v", "status", "--json"], 0),
        (["-v", "status"], 0),
        (["providers"], 0),
    ]
    out = []
    for args, code in steps:
        r = subprocess.run([sys.executable, "-m", "certmgr", "-c", str(config), *args],
                           capture_output=True, text=True, timeout=180, env=env)
        assert r.returncode == code, f"{args}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
        assert "Traceback" not in r.stderr, r.stderr
        out.append((" ".join(args), r))
    return out


#: a key's last PEM line can be a few characters long, and those occur by chance in any base64
#: (a certificate, a CSR) or binary file: only lines this long (96 bits and more) are evidence
MIN_NEEDLE = 16


def key_lines(pem: bytes) -> list[str]:
    return [ln.strip() for ln in pem.decode().splitlines()
            if len(ln.strip()) >= MIN_NEEDLE and not ln.startswith("-----")]


def test_nothing_secret_is_printed_or_stored(pebble: Pebble, tmp_path: Path) -> None:
    config = write_config(tmp_path, pebble)
    runs = run_all(config)
    state = tmp_path / "state"

    key_files = sorted(state.glob("keys/*/*.pem")) + sorted(state.glob("accounts/*.pem"))
    # mx1 rsa+ecdsa, mx2 twice, mx3 (failed attempts), mx4 (csr), and the account
    assert len(list(state.glob("keys/*/*.pem"))) >= 5 and list(state.glob("accounts/*.pem"))
    needles: list[tuple[str, str]] = [("the marker", "PRIVATE KEY"), ("the EAB HMAC key", HMAC),
                                      ("the TSIG secret", TSIG)]
    for kf in key_files:
        pem = kf.read_bytes()
        assert b"PRIVATE KEY" in pem
        needles += [(f"a line of {kf.name}", ln) for ln in key_lines(pem)]
    assert len(needles) > 3 + 5 * 3

    haystacks: list[tuple[str, str]] = []
    for label, r in runs:
        haystacks += [(f"stdout of `{label}`", r.stdout), (f"stderr of `{label}`", r.stderr)]
    con = sqlite3.connect(f"file:{state / 'certmgr.db'}?mode=ro", uri=True)
    try:
        dump = "\n".join(con.iterdump())
    finally:
        con.close()
    assert "mx3.example.com" in dump and "renewal_failed" in dump, "the dump holds the run's records"
    haystacks.append(("the database dump", dump))
    keys = set(key_files)
    others = [p for p in sorted(state.rglob("*")) if p.is_file() and p not in keys]
    assert any(p.name == "cert.pem" for p in others)
    for p in others:
        haystacks.append((str(p.relative_to(state)), p.read_bytes().decode("latin-1")))

    leaks = [f"{what} in {where}" for where, text in haystacks for what, needle in needles if needle in text]
    assert not leaks, "secrets leaked:\n" + "\n".join(leaks[:20])

    # the runs did what they claim: the failure names the host, -v logged the steps
    joined = "\n".join(r.stdout + r.stderr for _, r in runs)
    assert "mx3.example.com" in joined and "INFO" in joined
    assert "BEGIN CERTIFICATE REQUEST" in dict(runs)["-v csr mx4.example.com"].stdout
