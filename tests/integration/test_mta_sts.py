"""MTA-STS end to end with real peers: the policy follows the live MX RRset in a signed
BIND zone, the mta-sts certificate comes from pebble, policy and certificate go to a
real nginx site on port 443, and only then is the ``_mta-sts`` id bumped over RFC 2136.
After every step an independent MTA-STS client (``mta-sts-query`` from
postfix-mta-sts-resolver, resolving through a validating resolver) must see either no
policy yet or exactly the policy the published id stands for; ``checkdmarc`` validates
the ``_mta-sts`` and ``_smtp._tls`` records."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from certmgr.dns.mtasts import Step, parse_txt_id
from certmgr.dns.mtasts_run import DeployerWeb, MtaStsDomain, fetch_policy
from certmgr.dns.publisher import DnsPublisher, load_publisher
from certmgr.interfaces import ProviderEnv
from certmgr.options import Options
from providers.deployers.webroot import WebrootDeployer
from tests.peers.named import Named, ValidatingResolver, running_named, with_resolver
from tests.peers.nginx import NginxSite
from tests.peers.pebble import Pebble, dns01_issue, running_pebble
from tests.peers.testca import TestCA

pytestmark = pytest.mark.integration

DOMAIN = "example.test"


@dataclass
class World:
    primary: Named
    resolver: ValidatingResolver
    pebble: Pebble
    nginx: NginxSite
    trust: Path


@contextlib.contextmanager
def mta_sts_world(base: Path) -> Iterator[World]:
    """A signed zone with mx1/mx2 and mta-sts addresses, a validating resolver, an nginx site
    for ``mta-sts.<domain>`` (a placeholder certificate until certmgr deploys one), pebble."""
    with running_named(base / "primary", dnssec=True) as primary:
        resolver = ValidatingResolver(base / "resolver", primary)
        nginx = NginxSite(base / "nginx", f"mta-sts.{DOMAIN}")
        try:
            primary.replace("mta-sts", "A", [nginx.address])
            primary.replace("mx1", "A", ["127.0.0.1"])
            primary.replace("mx2", "A", ["127.0.0.1"])
            resolver.start()
            placeholder = TestCA().leaf(f"mta-sts.{DOMAIN}", key_type="ecdsa-p256")
            nginx.start(placeholder.fullchain_pem, placeholder.key_pem)
            with running_pebble(base / "pebble", dns_server=primary.server) as pebble:
                trust = base / "pebble-root.pem"
                trust.write_bytes(pebble.root_pem())
                yield World(primary, resolver, pebble, nginx, trust)
        finally:
            nginx.stop()
            resolver.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with mta_sts_world(tmp_path_factory.mktemp("mta-sts")) as w:
        yield w


def mta_sts_query(world: World) -> subprocess.CompletedProcess[str]:
    """postfix-mta-sts-resolver's client, with the test resolver and pebble's root."""
    query = shutil.which("mta-sts-query") or str(Path(sys.executable).parent / "mta-sts-query")
    return with_resolver(world.resolver, [query, DOMAIN], env={"SSL_CERT_FILE": str(world.trust)})


def checkdmarc_results(world: World) -> dict[str, Any]:
    """checkdmarc's verdicts on the _mta-sts and _smtp._tls records (it fetches the policy too)."""
    code = ("import json, sys, checkdmarc.mta_sts as m, checkdmarc.smtp_tls_reporting as r\n"
            f"ns = [{world.resolver.address!r}]\n"
            f"print(json.dumps({{'mta_sts': m.check_mta_sts({DOMAIN!r}, nameservers=ns, timeout=5), "
            f"'tlsrpt': r.check_smtp_tls_reporting({DOMAIN!r}, nameservers=ns, timeout=5)}}, default=str))\n")
    out = with_resolver(world.resolver, [sys.executable, "-c", code], env={"REQUESTS_CA_BUNDLE": str(world.trust)})
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_renewal_and_mx_change_bump_the_id_only_after_the_policy_is_served(world: World, tmp_path: Path) -> None:
    env = ProviderEnv(config_dir=tmp_path, state_dir=tmp_path)
    publisher: DnsPublisher = load_publisher("corp", {
        "type": "rfc2136", "server": world.primary.server, "zone": world.primary.zone,
        "tsig_key_file": str(world.primary.key_file), "ttl": 60, "nameservers": [world.primary.server],
    }, env, base_dir=tmp_path)
    publisher.replace(DOMAIN, "MX", ["10 mx1.example.test."])
    issue = dns01_issue(world.pebble, world.primary, tmp_path)

    nginx = world.nginx
    deployer = WebrootDeployer.from_config("mtasts-web", Options({
        "webroot": str(nginx.webroot), "cert_file": str(nginx.cert_file), "key_file": str(nginx.key_file),
        "reload": ["nginx", "-p", str(nginx.workdir), "-c", str(nginx.conf), "-s", "reload"],
    }, where="deploy.mtasts-web", base_dir=tmp_path), env)
    web = DeployerWeb(deployer, DOMAIN, "ecdsa-p256")
    sts = MtaStsDomain(state_dir=tmp_path / "state", domain=DOMAIN, publisher=publisher, issue=issue, web=web,
                       mode="enforce", max_age=86400, rua=("mailto:tlsrpt@example.test",),
                       resolver=(world.resolver.address, 53), trust_file=world.trust)
    policy_of_id: dict[str, str] = {}  # what each published id stands for
    ids_seen: list[str] = []

    def check_invariant(when: str) -> None:
        txt = world.primary.txt(f"_mta-sts.{DOMAIN}")
        pid = parse_txt_id(txt)
        text, _ = fetch_policy(DOMAIN, (world.resolver.address, 53), world.trust)
        if pid is None:
            return
        # the policy behind the published id, or one deployed since whose id is not out yet
        # (senders holding the old id do not refetch; new ones get the newer policy):
        # never an id whose policy is not served yet
        allowed = {policy_of_id[pid], sts.load().web_policy_text}
        assert text is not None and text in allowed, f"{when}: id {pid} published, policy served:\n{text}"
        q = mta_sts_query(world)
        assert q.returncode == 0, q.stdout + q.stderr
        for line in text.splitlines():
            if line.startswith(("mode:", "mx:")):
                assert line.split(":", 1)[1].strip() in q.stdout, f"{when}: mta-sts-query said {q.stdout}"
        if not ids_seen or ids_seen[-1] != pid:
            ids_seen.append(pid)

    def converge(label: str) -> list[Step]:
        steps = []
        for _ in range(30):
            d = sts.step(datetime.now(UTC))
            steps.append(d.step)
            if d.step is Step.PUBLISH_ID:
                policy_of_id[d.record.policy_id] = d.record.policy_text
            check_invariant(f"{label}, after {d.step.value}")
            if d.step is Step.IDLE:
                return steps
        pytest.fail(f"{label}: did not converge: {steps}")

    first = converge("first publication")
    assert first.index(Step.DEPLOY_WEB) < first.index(Step.PUBLISH_ID) < first.index(Step.IDLE)
    assert Step.PUBLISH_TLSRPT in first

    sts.renew_certificate()  # a renewal of the mta-sts certificate: new id, after it is served
    renewal = converge("certificate renewal")
    assert renewal.index(Step.DEPLOY_WEB) < renewal.index(Step.PUBLISH_ID)

    publisher.replace(DOMAIN, "MX", ["10 mx1.example.test.", "20 mx2.example.test."])  # an MX change
    change = converge("MX change")
    assert change.index(Step.DEPLOY_WEB) < change.index(Step.PUBLISH_ID)
    assert len(ids_seen) == 3 and ids_seen == sorted(ids_seen), ids_seen
    q = mta_sts_query(world)
    assert "mx2.example.test" in q.stdout and "enforce" in q.stdout, q.stdout

    verdict = checkdmarc_results(world)
    assert verdict["mta_sts"]["valid"] is True, verdict
    assert verdict["mta_sts"]["id"] == ids_seen[-1] and verdict["mta_sts"]["policy"]["mode"] == "enforce", verdict
    assert verdict["tlsrpt"]["valid"] is True and verdict["tlsrpt"]["tags"]["rua"]["value"] == [
        "mailto:tlsrpt@example.test"], verdict
