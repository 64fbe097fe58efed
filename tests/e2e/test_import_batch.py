"""`certmgr csr --batch DIR` and `certmgr import --batch DIR`: a whole inventory through the
manual-CA path in two runs (migrating from another tool, or a CA that signs in bulk).

Every file is checked as `certmgr import HOST FILE` checks it; a refused file is named with its
reason, exits 2, and does not keep the good ones out.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import Cli
from tests.peers.testca import TestCA

HOSTS = ["mx1.example.com", "mx2.example.com", "mx3.example.com"]


@pytest.fixture
def cli(tmp_path: Path) -> tuple[Cli, TestCA]:
    ca = TestCA("batch import test")
    mtas = "".join(f'\n[[mta]]\nhostname = "{h}"\nkey = "ecdsa-p256"\nissuer = "corp"\n' for h in HOSTS[:2])
    mtas += f'\n[[mta]]\nhostname = "{HOSTS[2]}"\nkey = ["rsa-2048", "ecdsa-p256"]\nissuer = "corp"\n'
    path = tmp_path / "certmgr.toml"
    path.write_text(f"""
[certmgr]
state_dir = "{tmp_path / 'state'}"
trust = "{ca.write_root(tmp_path / 'root.pem')}"

[issuer.corp]
type = "manual"
{mtas}""")
    return Cli(path), ca


def test_batch_csr_then_batch_import_fills_the_inventory(tmp_path: Path, cli: tuple[Cli, TestCA]) -> None:
    run, ca = cli
    csrs, issued = tmp_path / "csrs", tmp_path / "issued"
    assert "wrote 4 CSR(s)" in run("csr", "--batch", str(csrs)).stdout
    assert sorted(p.name for p in csrs.iterdir()) == [
        "mx1.example.com.csr", "mx2.example.com.csr", "mx3.example.com.ecdsa.csr", "mx3.example.com.rsa.csr"]
    issued.mkdir()
    for csr in csrs.iterdir():
        (issued / f"{csr.name.removesuffix('.csr')}.pem").write_bytes(ca.sign_csr(csr.read_bytes()))
    # a file for no configured MTA, and one whose certificate is for another host's key
    (issued / "mx9.example.com.pem").write_bytes((issued / "mx1.example.com.pem").read_bytes())
    (issued / "mx2.example.com.pem").write_bytes(
        ca.sign_csr((csrs / "mx1.example.com.csr").read_bytes()))

    r = run("import", "--batch", str(issued), check=2)
    assert f"{issued / 'mx9.example.com.pem'}: the name does not name a configured MTA" in r.stderr
    assert f"{issued / 'mx2.example.com.pem'}: mx2.example.com:" in r.stderr
    assert "2 of 5 file(s) refused" in r.stderr

    rows = {(row["hostname"], row["key_type"]): row for row in json.loads(run("status", "--json").stdout)}
    have = {key for key, row in rows.items() if row["serial"]}
    assert have == {("mx1.example.com", "ecdsa"), ("mx3.example.com", "ecdsa"), ("mx3.example.com", "rsa")}
    assert rows[("mx2.example.com", "ecdsa")]["serial"] is None, "the refused file stored nothing"

    # the CSR of the refused host is unchanged: signed right, it imports on its own
    (issued / "mx2.example.com.pem").write_bytes(ca.sign_csr((csrs / "mx2.example.com.csr").read_bytes()))
    assert "imported serial" in run("import", "mx2.example.com", str(issued / "mx2.example.com.pem")).stdout


def test_batch_and_host_are_one_or_the_other(tmp_path: Path, cli: tuple[Cli, TestCA]) -> None:
    run, _ = cli
    r = run("import", "--batch", str(tmp_path), "mx1.example.com", check=2)
    assert "takes no HOST or FILE" in r.stderr
    r = run("import", "mx1.example.com", check=2)
    assert "certmgr import HOST FILE (or --batch DIR)" in r.stderr
    r = run("import", "--batch", str(tmp_path / "nowhere"), check=2)
    assert "cannot read" in r.stderr and "nowhere" in r.stderr
