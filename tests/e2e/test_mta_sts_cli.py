"""MTA-STS driven by `certmgr renew`, end to end: the ``mta-sts.<domain>`` certificate comes
from pebble through the ``[mta_sts."domain"]`` issuer (DNS-01 in a DNSSEC-signed BIND zone),
policy and certificate go to a real nginx through the ``webroot`` deploy target, and only once
nginx serves them over HTTPS is the ``_mta-sts`` id bumped over RFC 2136.  A watcher fetches
id and policy as a sender does all along, so an id published before its policy is served is
caught; ``mta-sts-query`` (postfix-mta-sts-resolver) and ``checkdmarc`` check the result."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from certmgr.dns.mtasts import parse_txt_id
from certmgr.dns.mtasts_run import fetch_policy
from tests.e2e.conftest import Cli
from tests.integration.test_mta_sts import DOMAIN, World, checkdmarc_results, mta_sts_query, mta_sts_world

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with mta_sts_world(tmp_path_factory.mktemp("mta-sts-cli")) as w:
        yield w


def write_config(tmp_path: Path, world: World, mode: str = "testing") -> Cli:
    p, n = world.primary, world.nginx
    nginx = ["nginx", "-p", str(n.workdir), "-c", str(n.conf)]
    path = tmp_path / "certmgr.toml"
    path.write_text(f"""[certmgr]
state_dir = "{tmp_path / 'state'}"
resolver = "{p.server}"
trust = "{world.trust}"

{world.pebble.issuer_toml(challenge=p.challenge_toml())}
{p.zone_toml(ttl=60)}
[deploy.mtasts-web]
type = "webroot"
webroot = "{n.webroot}"
cert_file = "{n.cert_file}"
key_file = "{n.key_file}"
check = {[*nginx, "-t", "-q"]!r}
reload = {[*nginx, "-s", "reload"]!r}

[mta_sts."{DOMAIN}"]
mode = "{mode}"
max_age = 86400
dns = "corp"
web = "mtasts-web"
issuer = "pebble"
rua = ["mailto:tlsrpt@example.test"]
""".replace("'", '"'))
    return Cli(path)


Seen = tuple[str | None, str | None, str | None]  # (published id, policy text, certificate sha256)


class Watcher:
    """Looks as a sender does, over and over while certmgr runs: the id on the primary, then
    the policy and certificate over HTTPS."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.seen: list[Seen] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def look(self) -> Seen:
        pid = parse_txt_id(self.world.primary.txt(f"_mta-sts.{DOMAIN}"))
        text, sha = fetch_policy(DOMAIN, (self.world.primary.address, self.world.primary.port), self.world.trust)
        self.seen.append((pid, text, sha))
        return pid, text, sha

    def _run(self) -> None:
        while not self._stop.is_set():
            self.look()

    def __enter__(self) -> Watcher:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(30)

    def never_new_id_with_old_content(self, before: Seen, after: Seen) -> None:
        """Once the new id is out, a sender only ever gets the new policy and certificate."""
        assert after[0] != before[0] and after[0] is not None, (before[0], after[0])
        for pid, text, sha in self.seen:
            if pid == after[0]:
                assert (text, sha) == after[1:], f"id {pid} published while serving an older policy or certificate"


def actions(cli: Cli, *args: str, check: int | None = 0) -> list[tuple[str, str]]:
    import json

    out = json.loads(cli("renew", "--json", *args, check=check).stdout)
    return [(o["hostname"], o["action"]) for o in out]


def query_says(world: World, *words: str) -> None:
    q = mta_sts_query(world)
    assert q.returncode == 0, q.stdout + q.stderr
    for w in words:
        assert w in q.stdout, f"mta-sts-query said: {q.stdout}"


HOST = f"mta-sts.{DOMAIN}"


def test_renew_issues_serves_and_publishes_then_renewals_and_mx_changes_bump_the_id_after_serving(
        world: World, tmp_path: Path) -> None:
    world.primary.replace(f"{DOMAIN}.", "MX", ["10 mx1.example.test."])
    cli = write_config(tmp_path, world)
    cli("validate")
    watcher = Watcher(world)
    start = watcher.look()
    with watcher:
        first = actions(cli)
    assert (HOST, "issued") in first and (HOST, "mta-sts") in first, first
    now = watcher.look()
    watcher.never_new_id_with_old_content(start, now)
    assert now[1] is not None and "mode: testing" in now[1] and "mx: mx1.example.test" in now[1]
    query_says(world, "testing", "mx1.example.test")
    verdict = checkdmarc_results(world)
    assert verdict["mta_sts"]["valid"] is True and verdict["mta_sts"]["id"] == now[0], verdict
    assert verdict["tlsrpt"]["valid"] is True, verdict

    assert actions(cli) == [], "nothing due, nothing changed: no new id"
    assert watcher.look()[0] == now[0]

    before = now
    with watcher:  # a forced renewal of the mta-sts certificate
        forced = actions(cli, "--force")
    assert forced[0] == (HOST, "issued") and (HOST, "mta-sts") in forced, forced
    now = watcher.look()
    assert now[2] != before[2], "the renewed certificate is served"
    watcher.never_new_id_with_old_content(before, now)
    assert int(now[0] or 0) > int(before[0] or 0)

    before = now
    world.primary.replace(f"{DOMAIN}.", "MX", ["10 mx1.example.test.", "20 mx2.example.test."])
    with watcher:  # an MX change
        changed = actions(cli)
    assert changed == [(HOST, "mta-sts")], changed
    now = watcher.look()
    assert now[1] is not None and "mx: mx2.example.test" in now[1]
    watcher.never_new_id_with_old_content(before, now)
    query_says(world, "mx2.example.test", "testing")
    status = cli("status").stdout  # the plain table: domain, mode, step, id, policy served
    assert f"{DOMAIN}\ttesting\tpublished\t{now[0]}\tyes" in status, status


def test_sigkill_at_every_step_then_a_rerun_completes_and_no_sender_sees_a_new_id_with_an_old_policy(
        world: World, tmp_path: Path) -> None:
    world.primary.replace(f"{DOMAIN}.", "MX", ["10 mx1.example.test."])
    cli = write_config(tmp_path, world)
    watcher = Watcher(world)
    actions(cli)
    for step in ("issued", "deployed", "recorded", "published"):
        before = watcher.look()
        env = {**os.environ, "CERTMGR_CRASH_AFTER": f"mta-sts-{step}"}
        env.pop("CERTMGR_CONFIG", None)
        with watcher:
            killed = subprocess.run([sys.executable, "-m", "certmgr", "-c", str(cli.config), "renew", "--force"],
                                    capture_output=True, text=True, timeout=180, env=env)
        assert killed.returncode == -9, f"not killed after {step}: {killed.stdout}{killed.stderr}"
        with watcher:
            actions(cli)  # the next run (the daemon's next tick) completes the sequence
        now = watcher.look()
        watcher.never_new_id_with_old_content(before, now)
        assert actions(cli) == [], f"after the kill at {step} and a rerun, all is in step"
        query_says(world, "testing", "mx1.example.test")


def test_a_switch_to_enforce_is_refused_while_an_mx_fails(world: World, tmp_path: Path) -> None:
    world.primary.replace(f"{DOMAIN}.", "MX", ["10 mx1.example.test."])
    cli = write_config(tmp_path, world)
    actions(cli)
    before = Watcher(world).look()
    # mx9 has no address: a sender enforcing the policy could not deliver to it
    world.primary.replace(f"{DOMAIN}.", "MX", ["10 mx1.example.test.", "20 mx9.example.test."])
    cli = write_config(tmp_path, world, mode="enforce")
    refused = cli("renew", check=1)
    assert "mta-sts-refused" in refused.stdout and "mx9.example.test" in refused.stdout, refused.stdout
    after = Watcher(world).look()
    assert after == before, "the testing policy and its id stay published"
    query_says(world, "testing")
