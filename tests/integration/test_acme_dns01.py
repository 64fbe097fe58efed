"""DNS-01 through RFC 2136 against a real BIND, validated by a real pebble that resolves
through that BIND."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from certmgr.errors import ChallengeError, ConfigError
from certmgr.interfaces import CertRequest, ChallengeTask, IssueContext, Options, ProviderEnv
from providers.challenges.rfc2136 import Rfc2136Solver
from tests.peers.named import Named, running_named
from tests.peers.pebble import AccountStore, Pebble, make_csr, make_issuer, running_pebble

pytestmark = pytest.mark.integration


@dataclass
class Peers:
    named: Named
    pebble: Pebble


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peers]:
    base = tmp_path_factory.mktemp("dns01")
    with running_named(base / "named") as ns, running_pebble(base / "pebble", dns_server=ns.server) as p:
        yield Peers(ns, p)


def solver_table(ns: Named, **extra: Any) -> dict[str, Any]:
    return {
        "type": "dns-01",
        "provider": "rfc2136",
        "server": ns.server,
        "tsig_key_file": str(ns.key_file),
        "nameservers": [ns.server],
        **extra,
    }


def make_solver(table: Mapping[str, Any], base: Path) -> Rfc2136Solver:
    return Rfc2136Solver.from_config(
        "challenge",
        Options(table, where="challenge", base_dir=base),
        ProviderEnv(config_dir=base, state_dir=base),
    )


def test_dns01_issuance_publishes_then_removes_txt(peers: Peers, tmp_path: Path) -> None:
    ns = peers.named
    table = {
        "directory": peers.pebble.directory_url,
        "ca_bundle": str(peers.pebble.ca_bundle),
        "challenge": solver_table(ns),
        "timeout": 60,
    }
    issuer = make_issuer(table, tmp_path)
    names = ["mx1.example.test", "*.mx1.example.test"]
    req = CertRequest(
        hostname=names[0], names=tuple(names), key_type="ecdsa-p256", csr_pem=make_csr(names)[1]
    )
    store = AccountStore()
    seen_during: list[list[str]] = []
    ctx: IssueContext = store.context(req.hostname)

    def record_step(step: str, detail: Mapping[str, str]) -> None:
        # at this point the answer must be live on the authoritative server
        if step == "challenge_answered":
            seen_during.append(ns.txt("_acme-challenge.mx1.example.test"))

    ctx.record_step = record_step
    issued = issuer.issue(req, ctx)
    leaf = x509.load_pem_x509_certificates(issued.fullchain_pem)[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(san.get_values_for_type(x509.DNSName)) == sorted(names)
    # both authorizations (base name and wildcard) use the same owner name, two values
    assert seen_during and all(len(v) >= 1 for v in seen_during)
    assert max(len(v) for v in seen_during) == 2
    assert ns.txt("_acme-challenge.mx1.example.test") == [], "TXT records removed after validation"


def test_present_and_cleanup_exact_value(peers: Peers, tmp_path: Path) -> None:
    ns = peers.named
    solver = make_solver(solver_table(ns), tmp_path)
    a = ChallengeTask(domain="keep.example.test", token="t1", key_authorization="t1.x", dns_value="value-a")
    b = ChallengeTask(domain="keep.example.test", token="t2", key_authorization="t2.x", dns_value="value-b")
    solver.present(a)
    solver.present(b)
    assert sorted(ns.txt("_acme-challenge.keep.example.test")) == ["value-a", "value-b"]
    solver.cleanup(a)
    assert ns.txt("_acme-challenge.keep.example.test") == ["value-b"]
    solver.cleanup(b)
    assert ns.txt("_acme-challenge.keep.example.test") == []


def test_zone_found_by_soa_lookup(peers: Peers, tmp_path: Path) -> None:
    solver = make_solver(solver_table(peers.named), tmp_path)
    assert solver.find_zone("_acme-challenge.a.b.example.test.") == "example.test."


def test_wrong_tsig_key_is_refused(peers: Peers, tmp_path: Path) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text('key "certmgr-test" { algorithm hmac-sha256; secret "c2VjcmV0c2VjcmV0c2VjcmV0"; };\n')
    solver = make_solver(solver_table(peers.named, tsig_key_file=str(bad)), tmp_path)
    task = ChallengeTask(domain="x.example.test", token="t", key_authorization="t.k", dns_value="v")
    with pytest.raises(ChallengeError) as err:
        solver.present(task)
    assert peers.named.server in str(err.value)


def test_inline_secret_refused(peers: Peers, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tsig_secret"):
        make_solver(solver_table(peers.named, tsig_secret="abc"), tmp_path)
