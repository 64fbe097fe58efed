"""Enforced TLS to partners through a real outbound Exim.

The Exim deployer writes the partner TLS policy file; the smtp transport of a real
Exim reads it (the transport options documented in the README).  Deliveries run in
``exim -qff`` inside a mount namespace whose /etc/resolv.conf points at the test BIND,
so Exim finds the partners' MX records.  A partner that meets 'verify' is delivered
with a verified certificate (CV=yes); a forced partner that cannot be verified is
deferred with the TLS reason in the log.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from certmgr.config.model import PartnerSpec
from certmgr.interfaces import Options, ProviderEnv
from certmgr.partners.check import CheckOptions, check_partners
from certmgr.partners.enforce import enforce
from providers.deployers.exim import EximDeployer
from tests.peers.exim import EximPeer, exim_env
from tests.peers.partners import PartnerWorld, partner_world
from tests.peers.util import random_loopback_address

pytestmark = pytest.mark.integration

TRANSPORT = """\
  hosts_require_tls = ${{lookup{{$domain}}lsearch{{{policy}}}{{*}}{{}}}}
  tls_verify_hosts = ${{lookup{{$domain}}lsearch{{{policy}}}{{${{if eq{{$value}}{{encrypt}}{{}}{{*}}}}}}{{}}}}
  tls_verify_cert_hostnames = ${{lookup{{$domain}}lsearch{{{policy}}}{{${{if eq{{$value}}{{encrypt}}{{}}{{*}}}}}}{{}}}}
  hosts_require_dane = ${{lookup{{$domain}}lsearch{{{policy}}}{{${{if eq{{$value}}{{dane-only}}{{*}}{{}}}}}}{{}}}}
"""


def routes(policy: Path, trust: Path) -> str:
    return (
        "queue_only\nacl_smtp_rcpt = acl_check_rcpt\n"
        "begin acl\nacl_check_rcpt:\n  accept\n"
        "begin routers\ndnslookup:\n  driver = dnslookup\n  transport = remote_smtp\n  no_more\n"
        "begin transports\nremote_smtp:\n  driver = smtp\n  multi_domain = false\n"
        f"  tls_verify_certificates = {trust}\n" + TRANSPORT.format(policy=policy)
    )


@dataclass
class Sender:
    world: PartnerWorld
    peer: EximPeer
    deployer: EximDeployer
    resolv: Path

    def send(self, rcpt: str) -> None:
        subprocess.run([str(self.peer.binary), "-C", str(self.peer.conf), "-odq", "-f", "ops@sender.test", rcpt],
                       input=f"To: {rcpt}\nSubject: partner TLS\n\nhello\n", text=True, env=exim_env(), check=True,
                       timeout=30)

    def run_queue(self) -> None:
        script = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
        subprocess.run(["unshare", "--mount", "sh", "-c", script, str(self.resolv), str(self.peer.binary), "-C",
                        str(self.peer.conf), "-qff"], env=exim_env(), check=True, timeout=120)

    def log(self) -> list[str]:
        return self.peer.log.read_text().splitlines() if self.peer.log.exists() else []


@pytest.fixture(scope="module")
def sender(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sender]:
    root = tmp_path_factory.mktemp("enforce-exim")
    dns = random_loopback_address(53)
    with partner_world(root / "partners", defects=("good", "selfsigned", "nostarttls"), dns_address=dns) as world:
        resolv = root / "resolv.conf"
        resolv.write_text(f"nameserver {dns}\noptions attempts:1 timeout:2\n")
        (root / "exim").mkdir()
        peer = EximPeer(root / "exim", hostname="out.sender.test", certs=[], keys=[])
        trust = peer.run_dir / "partner-root.pem"
        trust.write_bytes(world.trust_file.read_bytes())
        policy = peer.cert_dir / "tls_policy"
        peer.routes = routes(policy, trust)
        peer.write_config()
        table = {"cert_dir": str(peer.cert_dir), "exim_binary": str(peer.binary), "config_file": str(peer.conf),
                 "reload_command": ["true"]}
        deployer = EximDeployer.from_config("edge", Options(table, where="deploy.edge", base_dir=root),
                                            ProviderEnv(config_dir=root, state_dir=root))
        try:
            yield Sender(world, peer, deployer, resolv)
        finally:
            peer.stop()


def test_enforced_partner_is_verified_and_forced_one_is_deferred(sender: Sender,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LD_LIBRARY_PATH", exim_env()["LD_LIBRARY_PATH"])  # for the deployer's `exim -bV`
    w = sender.world
    good = PartnerSpec(w.domain("good"), "verify", deploy=("edge",))
    forced = PartnerSpec(w.domain("selfsigned"), "verify", deploy=("edge",), force=True)
    facts = check_partners([good, forced], CheckOptions(resolver=w.resolver, trust_file=w.trust_file, timeout=5))
    [outcome] = enforce(facts, {"edge": sender.deployer}, datetime.now(UTC))
    assert outcome.error is None and outcome.changed, outcome
    assert sender.deployer.tls_policy_file and Path(sender.deployer.tls_policy_file).read_text().endswith(
        f"{good.domain}: verify\n{forced.domain}: verify\n")
    sender.send(f"someone@{good.domain}")
    sender.send(f"someone@{forced.domain}")
    sender.run_queue()
    log = sender.log()
    delivered = [line for line in log if f"=> someone@{good.domain}" in line]
    assert delivered and "CV=yes" in delivered[0] and f"H={w.mx('good')}" in delivered[0], log
    deferred = [line for line in log if f"== someone@{forced.domain}" in line]
    assert deferred and "defer (-37)" in deferred[0], log
    assert "TLS session: (certificate verification failed): certificate invalid" in deferred[0], log


def test_exim_refuses_what_it_cannot_enforce(sender: Sender) -> None:
    w = sender.world
    before = Path(sender.deployer.tls_policy_file).read_bytes() if Path(sender.deployer.tls_policy_file).exists() \
        else None
    secure = PartnerSpec(w.domain("good"), "secure", deploy=("edge",))
    facts = check_partners([secure], CheckOptions(resolver=w.resolver, trust_file=w.trust_file, timeout=5))
    [outcome] = enforce(facts, {"edge": sender.deployer}, datetime.now(UTC))
    assert outcome.error is not None and "cannot enforce 'secure'" in outcome.error
    after = Path(sender.deployer.tls_policy_file).read_bytes() if Path(sender.deployer.tls_policy_file).exists() \
        else None
    assert after == before
