"""Deploy into a real private Dovecot: verified over IMAP STARTTLS and implicit TLS; rollbacks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certmgr.deploy.verify import DeployOutcome, deploy_and_verify, make_probe_fn
from certmgr.interfaces import CertBundle, DeployRequest, Options, ProviderEnv, VerifyTarget
from certmgr.probe.client import probe
from providers.deployers.dovecot import DovecotDeployer
from tests.peers.dovecot import DovecotPeer
from tests.peers.testca import TestCA

pytestmark = pytest.mark.integration
HOST = "imap.example.com"


class Site:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca = TestCA()
        self.trust = self.ca.write_root(root / "root.pem")
        self.cert_dir = root / "certs"
        self.cert_dir.mkdir()
        self.old = self.ca.leaf(HOST)
        crt, key = self.cert_dir / f"{HOST}.rsa.crt", self.cert_dir / f"{HOST}.rsa.key"
        crt.write_bytes(self.old.fullchain_pem)
        key.write_bytes(self.old.key_pem)
        key.chmod(0o600)
        self.peer = DovecotPeer(root, cert=crt, key=key)

    def deploy(self, bundles: list[CertBundle], *, mta_target: VerifyTarget | None = None,
               **extra: Any) -> DeployOutcome:
        """``mta_target``: the MTA's own probe target (its ``smtp`` and ``protocol``); without it
        the table's ``verify`` is the Dovecot's endpoint and the MTA's target is another server."""
        table = {"cert_dir": str(self.cert_dir), "config_file": str(self.peer.snippet),
                 "dovecot_config": str(self.peer.conf), **extra}
        if mta_target is None:
            table.setdefault("verify", f"127.0.0.1:{self.peer.imap_port}")
        deployer = DovecotDeployer.from_config(
            "imap", Options(table, where="deploy.imap", base_dir=self.root),
            ProviderEnv(config_dir=self.root, state_dir=self.root))
        request = DeployRequest(hostname=HOST, bundles=tuple(bundles),
                                verify=mta_target or VerifyTarget("127.0.0.1", 1))
        return deploy_and_verify(deployer, request, make_probe_fn(HOST, trust_file=self.trust, timeout=5),
                                 attempts=10, delay=0.3)

    def served(self, *, implicit: bool = False) -> str | None:
        port = self.peer.imaps_port if implicit else self.peer.imap_port
        r = probe("127.0.0.1", port, protocol="imap", implicit_tls=implicit, servername=HOST,
                  trust_file=self.trust, timeout=5)
        return r.certificate.sha256 if r.certificate else None


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path)
    s.peer.start()
    yield s
    s.peer.stop()


def test_deploy_verified_over_imap_starttls(site: Site) -> None:
    assert site.served() == site.old.sha256
    new = site.ca.leaf(HOST)
    outcome = site.deploy([new])
    assert outcome.ok, outcome.reason
    assert outcome.served_sha256s == {f"127.0.0.1:{site.peer.imap_port}/rsa": new.sha256}
    assert site.served(implicit=True) == new.sha256
    assert site.peer.snippet.read_text().splitlines()[1:] == [
        f"ssl_cert = <{site.cert_dir}/{HOST}.rsa.crt", f"ssl_key = <{site.cert_dir}/{HOST}.rsa.key"]


@pytest.mark.parametrize("protocol", ["imap", "imaps", "pop3"])
def test_deploy_verified_at_the_mtas_own_imap_or_pop3_target(site: Site, protocol: str) -> None:
    # [[mta]] smtp = "127.0.0.1:<port>", protocol = "imap": a Dovecot on an unusual port, and a
    # [deploy.X] without `verify`: the deployment is checked where `certmgr check` probes
    port, proto, implicit = {"imap": (site.peer.imap_port, "imap", False),
                             "imaps": (site.peer.imaps_port, "imap", True),
                             "pop3": (site.peer.pop3_port, "pop3", False)}[protocol]
    new = site.ca.leaf(HOST)
    outcome = site.deploy([new], mta_target=VerifyTarget("127.0.0.1", port, proto, implicit))
    assert outcome.ok, outcome.reason
    assert outcome.served_sha256s == {f"127.0.0.1:{port}/rsa": new.sha256}
    assert site.served() == new.sha256


def test_deploy_verified_over_implicit_tls(site: Site) -> None:
    new = site.ca.leaf(HOST, key_type="ecdsa-p256")
    outcome = site.deploy([new], verify=f"127.0.0.1:{site.peer.imaps_port}", implicit_tls=True)
    assert outcome.ok, outcome.reason
    assert site.served() == new.sha256


@pytest.mark.parametrize("implicit", [False, True], ids=["stls", "pop3s"])
def test_deploy_verified_over_pop3(site: Site, implicit: bool) -> None:
    """A Dovecot that serves only POP3 is verified in POP3 (STLS, or implicit TLS on 995)."""
    new = site.ca.leaf(HOST)
    port = site.peer.pop3s_port if implicit else site.peer.pop3_port
    outcome = site.deploy([new], verify=f"127.0.0.1:{port}", verify_protocol="pop3", implicit_tls=implicit)
    assert outcome.ok, outcome.reason
    assert outcome.served_sha256s == {f"127.0.0.1:{port}/rsa": new.sha256}


def test_no_reload_keeps_old_certificate_and_rolls_back(site: Site) -> None:
    # Dovecot's config process holds the certificate it read at the last (re)load:
    # without a reload the new files are not served, verification fails, rollback follows.
    outcome = site.deploy([site.ca.leaf(HOST)], reload_command=["true"])
    assert not outcome.ok and outcome.rolled_back
    assert "still serves the certificate" in (outcome.reason or "")
    assert site.served() == site.old.sha256
    assert (site.cert_dir / f"{HOST}.rsa.crt").read_bytes() == site.old.fullchain_pem


def test_bad_snippet_fails_config_test(site: Site) -> None:
    outcome = site.deploy([site.ca.leaf(HOST)], version="2.4")  # 2.4 names are unknown to Dovecot 2.3
    assert not outcome.ok and outcome.rolled_back
    assert "dovecot config test" in (outcome.reason or "")
    assert site.served() == site.old.sha256


OTHER = "mail2.example.com"


def two_hosts(site: Site, **extra: Any) -> tuple[DeployOutcome, CertBundle, CertBundle]:
    """imap.example.com (primary) and mail2.example.com on the one Dovecot, as one request."""
    from certmgr.interfaces import HostBundles

    first, second = site.ca.leaf(HOST), site.ca.leaf(OTHER, ("imap2.example.com",), key_type="ecdsa-p256")
    verify = VerifyTarget("127.0.0.1", 1)  # dovecot probes its own target
    hosts = (HostBundles(HOST, (first,), verify), HostBundles(OTHER, (second,), verify))
    table = {"cert_dir": str(site.cert_dir), "config_file": str(site.peer.snippet),
             "dovecot_config": str(site.peer.conf), "verify": f"127.0.0.1:{site.peer.imap_port}", **extra}
    deployer = DovecotDeployer.from_config("imap", Options(table, where="deploy.imap", base_dir=site.root),
                                           ProviderEnv(config_dir=site.root, state_dir=site.root))
    request = DeployRequest(HOST, (first,), verify, hosts)
    outcome = deploy_and_verify(deployer, request, make_probe_fn(HOST, trust_file=site.trust, timeout=5),
                                attempts=10, delay=0.3)
    return outcome, first, second


def served_for(site: Site, servername: str) -> str | None:
    r = probe("127.0.0.1", site.peer.imap_port, protocol="imap", servername=servername, trust_file=site.trust,
              timeout=5)
    return r.certificate.sha256 if r.certificate else None


def test_two_hostnames_by_local_name(site: Site) -> None:
    outcome, first, second = two_hosts(site)
    assert outcome.ok, outcome.reason
    port = site.peer.imap_port
    assert outcome.served_sha256s == {
        f"127.0.0.1:{port} with SNI {HOST}/rsa": first.sha256,
        f"127.0.0.1:{port} with SNI {OTHER}/ecdsa": second.sha256,
        f"127.0.0.1:{port} without SNI/rsa": first.sha256,
    }
    assert served_for(site, OTHER) == second.sha256
    assert served_for(site, "imap2.example.com") == second.sha256, "a SAN selects its certificate"
    assert served_for(site, "") == first.sha256, "no SNI: the primary's"
    assert f"local_name {OTHER} {{" in site.peer.snippet.read_text()


def test_two_hostnames_rolled_back_as_one(site: Site) -> None:
    import stat

    site.peer.snippet.chmod(0o640)
    before = site.peer.snippet.read_bytes()
    outcome, _, _ = two_hosts(site, reload_command=["true"])  # Dovecot keeps what it read
    assert not outcome.ok and outcome.rolled_back
    assert site.peer.snippet.read_bytes() == before
    assert stat.S_IMODE(site.peer.snippet.stat().st_mode) == 0o640
    assert not list(site.cert_dir.glob(f"{OTHER}.*")), "the new hostname's files are removed"
    assert served_for(site, OTHER) == site.old.sha256
