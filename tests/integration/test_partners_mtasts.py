"""MTA-STS and TLS-RPT of partners: policies served over HTTPS with a certificate that a
real pebble issued (HTTP-01 validated for real), records in the real BIND zone."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from certmgr.config.model import PartnerSpec
from certmgr.interfaces import CertRequest
from certmgr.partners.assess import to_json
from certmgr.partners.check import CheckOptions, check_partners
from tests.peers.nginx import NginxSite
from tests.peers.partners import ZONE, PartnerWorld, partner_world
from tests.peers.pebble import AccountStore, make_csr, make_issuer, running_pebble

pytestmark = pytest.mark.integration
POLICY = "version: STSv1\r\nmode: {mode}\r\n{mx}max_age: 86400\r\n"


@dataclass
class Sts:
    world: PartnerWorld
    trust: Path

    def check(self, name: str) -> dict[str, Any]:
        [facts] = check_partners([PartnerSpec(self.world.domain(name))],
                                 CheckOptions(resolver=self.world.resolver, trust_file=self.trust, timeout=5))
        return to_json(facts, datetime.now(UTC))


def _pebble_certificate(root: Path, names: list[str]) -> tuple[Path, Path, bytes]:
    """(chain file, key file, pebble's root) for ``names``, issued by a real pebble."""
    with running_pebble(root / "pebble") as pebble:
        table = {"directory": pebble.directory_url, "ca_bundle": str(pebble.ca_bundle),
                 "contact": ["mailto:postmaster@partners.test"], "timeout": 60,
                 "challenge": {"type": "http-01", "address": "127.0.0.1", "port": pebble.http_port}}
        issuer = make_issuer(table, root)
        try:
            key_pem, csr_pem = make_csr(names)
            issued = issuer.issue(CertRequest(hostname=names[0], names=tuple(names), key_type="ecdsa-p256",
                                              csr_pem=csr_pem), AccountStore().context(names[0]))
        finally:
            issuer.close()
        pebble_root = pebble.root_pem()
    chain, key = root / "sts.pem", root / "sts.key"
    chain.write_bytes(issued.fullchain_pem)
    key.write_bytes(key_pem)
    key.chmod(0o600)
    return chain, key, pebble_root


@pytest.fixture(scope="module")
def sts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sts]:
    root = tmp_path_factory.mktemp("mtasts")
    good, multi, nostarttls = (f"mta-sts.{d}.{ZONE}" for d in ("good", "multi", "nostarttls"))
    web = NginxSite(root / "nginx", good, vhosts={multi: "text/plain", nostarttls: "text/html"})
    records = (
        f'_mta-sts.good IN TXT "v=STSv1; id=20261130T01"\nmta-sts.good IN A {web.address}\n'
        '_smtp._tls.good IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@good.partners.test,https://r.good.partners.test/"\n'
        f'_mta-sts.multi IN TXT "v=STSv1; id=7"\nmta-sts.multi IN A {web.address}\n'
        '_mta-sts.nomx IN TXT "v=STSv1; id=1"\n'  # announced, but no mta-sts.nomx host
        f'_mta-sts.nostarttls IN TXT "v=STSv1; id=2"\nmta-sts.nostarttls IN A {web.address}\n'
    )
    chain, key, pebble_root = _pebble_certificate(root, [good, multi, nostarttls])
    pages = {
        good: POLICY.format(mode="enforce", mx=f"mx: *.good.{ZONE}\r\n"),
        multi: POLICY.format(mode="enforce", mx=f"mx: mx.good.{ZONE}\r\n"),
        nostarttls: POLICY.format(mode="testing", mx=f"mx: *.{ZONE}\r\n"),  # served as text/html
    }
    web.start(chain.read_bytes(), key.read_bytes())
    try:
        for host, policy in pages.items():
            (web.root_of(host) / ".well-known").mkdir()
            (web.root_of(host) / ".well-known" / "mta-sts.txt").write_text(policy)
        with partner_world(root / "partners", defects=("good", "nostarttls"), records=records) as world:
            trust = root / "trust.pem"
            trust.write_bytes(world.trust_file.read_bytes() + pebble_root)
            yield Sts(world, trust)
    finally:
        web.stop()


def test_enforced_policy_that_lists_the_mx(sts: Sts) -> None:
    report = sts.check("good")
    assert report["status"] == "ok", report["problems"]
    assert report["mta_sts"] == {"mode": "enforce", "mx": [f"*.good.{ZONE}"], "id": "20261130T01", "problems": []}
    assert report["tls_rpt"] == ["mailto:tlsrpt@good.partners.test", "https://r.good.partners.test/"]


def test_an_mx_missing_from_the_policy_is_named(sts: Sts) -> None:
    report = sts.check("multi")
    assert report["mta_sts"]["mode"] == "enforce" and report["mta_sts"]["mx"] == [f"mx.good.{ZONE}"]
    assert (f"mx.nostarttls.{ZONE} is not an mx of the MTA-STS policy of multi.{ZONE} (mode enforce): senders "
            "that enforce MTA-STS will not deliver to it") in report["problems"]
    assert report["tls_rpt"] is None


def test_a_policy_that_cannot_be_fetched_is_a_warning(sts: Sts) -> None:
    report = sts.check("nomx")
    assert report["status"] == "warning"
    [problem] = report["problems"]
    assert problem.startswith(f"the MTA-STS policy of nomx.{ZONE} cannot be fetched from "
                              f"https://mta-sts.nomx.{ZONE}/.well-known/mta-sts.txt: mta-sts.nomx.{ZONE} does not "
                              "exist in DNS"), problem
    assert report["mta_sts"]["id"] == "1" and report["mta_sts"]["mode"] is None


def test_an_untrusted_policy_certificate_is_a_problem(sts: Sts) -> None:
    # without pebble's root the policy host is not trusted, as a sender would find
    [facts] = check_partners([PartnerSpec(sts.world.domain("good"))],
                             CheckOptions(resolver=sts.world.resolver, trust_file=sts.world.trust_file, timeout=5))
    report = to_json(facts, datetime.now(UTC))
    assert report["status"] == "warning"
    assert "certificate verify failed" in report["mta_sts"]["problems"][0] or \
        "CERTIFICATE_VERIFY_FAILED" in report["mta_sts"]["problems"][0], report["mta_sts"]


def test_a_policy_not_served_as_text_plain_is_a_problem(sts: Sts) -> None:
    report = sts.check("nostarttls")
    assert report["mta_sts"]["problems"] == [
        f"the MTA-STS policy of nostarttls.{ZONE} cannot be fetched from https://mta-sts.nostarttls.{ZONE}"
        f"/.well-known/mta-sts.txt: https://mta-sts.nostarttls.{ZONE}/.well-known/mta-sts.txt is served as "
        "text/html, not text/plain (RFC 8461 3.2)"]
