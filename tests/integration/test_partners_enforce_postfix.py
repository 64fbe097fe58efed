"""Enforced TLS to partners through a real outbound Postfix.

The outbound Postfix runs in a mount namespace whose /etc/resolv.conf points at the
test BIND (port 53 of its own loopback address), so its SMTP client finds the
partners' MX records; the partners are the private Postfix instances of
:mod:`tests.peers.partners`.  The policy map is written by the Postfix deployer from
real verdicts, and the outbound Postfix really uses it: mail to a partner that
meets its level leaves with a Verified TLS connection, mail under a forced level the
partner cannot meet is deferred with the TLS reason in the log.
"""

from __future__ import annotations

import smtplib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from certmgr.config.model import PartnerSpec
from certmgr.interfaces import Options, ProviderEnv
from certmgr.partners.check import CheckOptions, check_partners
from certmgr.partners.enforce import enforce
from providers.deployers.postfix import PostfixDeployer
from tests.peers.partners import PartnerWorld, partner_world
from tests.peers.postfix import PostfixPeer, wait_until
from tests.peers.util import random_loopback_address

pytestmark = pytest.mark.integration


@dataclass
class Sender:
    world: PartnerWorld
    peer: PostfixPeer
    deployer: PostfixDeployer
    map_file: Path

    def check(self, *specs: PartnerSpec) -> list:  # type: ignore[type-arg]
        return check_partners(specs, CheckOptions(resolver=self.world.resolver, trust_file=self.world.trust_file,
                                                  timeout=5))

    def send(self, rcpt: str) -> None:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "ops@sender.test", rcpt, "partner TLS"
        msg.set_content("hello")
        with smtplib.SMTP("127.0.0.1", self.peer.port, timeout=10) as s:
            s.send_message(msg)

    def log(self) -> str:
        return self.peer.log.read_text() if self.peer.log.exists() else ""

    def wait_log(self, *needles: str) -> list[str]:
        def found() -> bool:
            return all(any(n in line for line in self.log().splitlines()) for n in needles)
        subprocess.run(["postqueue", "-c", str(self.peer.config_dir), "-f"], check=False)
        wait_until(found, timeout=30, what=f"{needles} in {self.peer.log}")
        return [line for line in self.log().splitlines() if any(n in line for n in needles)]


@pytest.fixture(scope="module")
def sender(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sender]:
    root = tmp_path_factory.mktemp("enforce")
    dns = random_loopback_address(53)
    with partner_world(root / "partners", dns_address=dns) as world:
        resolv = root / "resolv.conf"
        resolv.write_text(f"nameserver {dns}\noptions attempts:1 timeout:2\n")
        peer = PostfixPeer(root / "out", hostname="out.sender.test", starttls=False, resolv_conf=resolv,
                           extra_main=(f"smtp_tls_security_level = may\nsmtp_tls_loglevel = 1\n"
                                          f"smtp_tls_CAfile = {world.trust_file}\nsmtp_address_preference = ipv4\n"
                                          "smtp_connect_timeout = 5s\n"))
        peer.start()
        try:
            map_file = root / "certmgr" / "tls_policy"
            map_file.parent.mkdir()
            table = {"config_dir": str(peer.config_dir), "cert_dir": str(root / "certmgr"),
                     "manage_config": True}
            deployer = PostfixDeployer.from_config(
                "edge", Options(table, where="deploy.edge", base_dir=root), ProviderEnv(config_dir=root,
                                                                                         state_dir=root))
            yield Sender(world, peer, deployer, map_file)
        finally:
            peer.stop()


def test_enforced_partner_gets_verified_tls_and_forced_one_is_deferred(sender: Sender) -> None:
    w = sender.world
    good = PartnerSpec(w.domain("good"), "verify", deploy=("edge",))
    forced = PartnerSpec(w.domain("selfsigned"), "verify", deploy=("edge",), force=True)
    [outcome] = enforce(sender.check(good, forced), {"edge": sender.deployer}, datetime.now(UTC))
    assert outcome.error is None and outcome.changed
    assert outcome.enforced == (good.domain, forced.domain)
    text = sender.map_file.read_text()
    assert f"{good.domain} verify match=hostname\n" in text and f"{forced.domain} verify match=hostname\n" in text
    postconf = subprocess.run(["postconf", "-c", str(sender.peer.config_dir), "-h", "smtp_tls_policy_maps"],
                              capture_output=True, text=True, check=True).stdout.strip()
    assert postconf == f"hash:{sender.map_file}"

    sender.send(f"someone@{good.domain}")
    sender.send(f"someone@{forced.domain}")
    lines = sender.wait_log(f"Verified TLS connection established to {w.mx('good')}[{w.mtas['good'].address}]:25",
                            f"to=<someone@{good.domain}>", f"to=<someone@{forced.domain}>")
    sent = [line for line in lines if f"to=<someone@{good.domain}>" in line]
    assert any("status=sent" in line for line in sent), lines
    deferred = [line for line in lines if f"to=<someone@{forced.domain}>" in line]
    assert deferred and all("status=deferred" in line for line in deferred), lines
    assert any("dsn=4.7.5, status=deferred (Server certificate not verified)" in line for line in deferred), deferred


def test_refusal_keeps_the_old_map_byte_for_byte(sender: Sender) -> None:
    w = sender.world
    good = PartnerSpec(w.domain("good"), "verify", deploy=("edge",))
    enforce(sender.check(good), {"edge": sender.deployer}, datetime.now(UTC))
    before = sender.map_file.read_bytes()
    indexed = Path(str(sender.map_file) + ".db").read_bytes()
    broken = PartnerSpec(w.domain("multi"), "verify", deploy=("edge",))
    [outcome] = enforce(sender.check(good, broken), {"edge": sender.deployer}, datetime.now(UTC))
    assert not outcome.changed and outcome.error is None
    assert outcome.refused == (
        f"not enforcing 'verify' for {broken.domain} (its current policy stays): {w.mx('nostarttls')} "
        f"({w.mtas['nostarttls'].address}) does not offer STARTTLS: mail to {broken.domain} will be deferred under "
        "'verify' — wait for the partner to fix it, lower `require`, or set `force = true`",)
    assert sender.map_file.read_bytes() == before
    assert Path(str(sender.map_file) + ".db").read_bytes() == indexed
    # a removed partner leaves the map
    [outcome] = enforce([], {"edge": sender.deployer}, datetime.now(UTC))
    assert outcome.changed and good.domain not in sender.map_file.read_text()
