"""Exactly-once renewal when several certmgr processes (or nodes) work at the same time.

One machine, SQLite: two `certmgr renew` and the `certmgr run` daemon start at the same
moment on a fresh state; every due certificate is issued once in total.  Three nodes
sharing one PostgreSQL database: 200 certificates, one node killed (SIGKILL) midway, its
claimed certificates taken over by another node when the lease lapses; still no
duplicate.  Issued certificates are counted in the store and on pebble's side.

HTTP-01 answers go to a webroot shared by all processes and served by one web server
(what a multi-node setup does), since standalone listeners of several processes would
fight over the one port pebble validates on.
"""

from __future__ import annotations

import functools
import http.server
import json
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from certmgr.store import Store, utcnow
from tests.integration.test_crash_resume import (
    PebbleCounter,
    as_machine,
    mta_blocks,
    popen_certmgr,
    store_of,
    write_config,
)
from tests.peers.pebble import Pebble, running_pebble
from tests.peers.postgres import Postgres, running_postgres

pytestmark = pytest.mark.integration


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serving_webroot(webroot: Path, port: int) -> Iterator[None]:
    """A plain web server for ``webroot`` where pebble checks HTTP-01 answers."""
    webroot.mkdir(parents=True, exist_ok=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port),
                                             functools.partial(_Quiet, directory=str(webroot)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def issued_per_slot(store: Store) -> dict[str, int]:
    return {s.hostname: len(store.versions(s.id)) for s in store.slots() if s.id is not None}


def wait_all_issued(store: Store, count: int, timeout: float) -> float:
    """Seconds until ``count`` slots have a certificate; fail after ``timeout``."""
    start = time.monotonic()
    while True:
        done = sum(1 for s in store.slots() if s.current_version_id is not None)
        if done == count:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            pytest.fail(f"only {done} of {count} certificates issued after {timeout:.0f}s")
        time.sleep(0.5)


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM, timeout: float = 60) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def outcomes(log: Path) -> Counter[str]:
    """Actions of a `renew --json` run from its output file."""
    text = log.read_text()
    start = text.find("[")
    assert start >= 0, f"no JSON outcome in {log}:\n{text[-2000:]}"
    return Counter(o["action"] for o in json.loads(text[start:]))


# --------------------------------------------------------------------------- one machine, SQLite


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    with running_pebble(tmp_path_factory.mktemp("pebble")) as p:
        yield p


SQLITE_CERTS = 16


def test_two_renew_processes_and_the_daemon_issue_each_certificate_once(tmp_path: Path, pebble: Pebble) -> None:
    webroot = tmp_path / "webroot"
    config = write_config(tmp_path, pebble, mta_blocks(SQLITE_CERTS) + '\n[daemon]\nmetrics_listen = ""\n',
                          webroot=webroot, concurrency=8)
    counter = PebbleCounter(pebble)
    logs = [tmp_path / "renew-a.out", tmp_path / "renew-b.out", tmp_path / "daemon.out"]
    with serving_webroot(webroot, pebble.http_port):
        # a fresh state directory: the racers also race to create the schema and the slots
        procs = [popen_certmgr(config, "renew", "--json", log=logs[0]),
                 popen_certmgr(config, "renew", "--json", log=logs[1]),
                 popen_certmgr(config, "run", log=logs[2])]
        try:
            codes = [p.wait(300) for p in procs[:2]]
            assert codes == [0, 0], [f.read_text()[-3000:] for f in logs[:2]]
            store = store_of(tmp_path)
            wait_all_issued(store, SQLITE_CERTS, 120)
            # the daemon may still be finishing a renewal it claimed: let it end cleanly
            assert procs[2].poll() is None, f"the daemon stopped:\n{logs[2].read_text()[-3000:]}"
        finally:
            daemon_code = stop(procs[2])
            for p in procs[:2]:
                stop(p, signal.SIGKILL)
    assert daemon_code == 0, logs[2].read_text()[-3000:]

    per_slot = issued_per_slot(store)
    assert len(per_slot) == SQLITE_CERTS
    assert set(per_slot.values()) == {1}, f"certificates per slot: {per_slot}"
    assert len(counter.orders()) == SQLITE_CERTS, "one ACME order per certificate"
    assert len(counter.issued()) == SQLITE_CERTS, "one certificate per slot from the CA"
    assert len(store.events(kind="issued")) == SQLITE_CERTS

    a, b = outcomes(logs[0]), outcomes(logs[1])
    daemon_issued = logs[2].read_text().count("): issued: serial")
    assert a["issued"] + b["issued"] + daemon_issued == SQLITE_CERTS, (a, b, daemon_issued)
    assert not a["failed"] and not b["failed"], (a, b)
    print(f"\nRACE sqlite {SQLITE_CERTS} certs: renew A {dict(a)}, renew B {dict(b)}, daemon issued "
          f"{daemon_issued}; pebble orders {len(counter.orders())}, certificates {len(counter.issued())}")
    store.close()


# --------------------------------------------------------------------------- three nodes, PostgreSQL

NODES = 3
PG_CERTS = 200
#: long enough that a busy node (2 CPUs shared by three) keeps its claims, short enough to wait for
NODE_LEASE = 10.0


@pytest.fixture(scope="module")
def fast_pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    # validation is not under test here: the store and the leases are
    with running_pebble(tmp_path_factory.mktemp("pebble-fast"), env={"PEBBLE_VA_ALWAYS_VALID": "1"}) as p:
        yield p


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with running_postgres() as pg:
        yield pg


# its own limits are 300 s to catch node 0 mid-renewal and 600 s for all to be issued: the test
# timeout must not cut them short when the machine is busy
@pytest.mark.timeout(900)
def test_three_nodes_on_postgres_one_killed_midway(tmp_path: Path, fast_pebble: Pebble, postgres: Postgres) -> None:
    url = postgres.create_database("threenodes")
    webroot = tmp_path / "webroot"  # pebble does not look (always valid); the solver still writes there
    webroot.mkdir()  # a webroot must exist (validate refuses one that does not)
    configs = [write_config(tmp_path / f"node{i}", fast_pebble, mta_blocks(PG_CERTS), database=url,
                            webroot=webroot, concurrency=8) for i in range(NODES)]
    env = {"CERTMGR_LEASE_SECONDS": str(NODE_LEASE)}
    counter = PebbleCounter(fast_pebble)
    runs = [0] * NODES

    def start(i: int) -> subprocess.Popen[str]:
        runs[i] += 1
        return popen_certmgr(configs[i], "renew", "--json", env=env, prefix=as_machine(f"node{i}"),
                             log=configs[i].parent / f"renew-{runs[i]}.out")

    def failed_run(i: int) -> str:
        """What a failed survivor run said, and what pebble logged last (to tell a CA stall apart)."""
        return (f"node {i} run {runs[i]}:\n{(configs[i].parent / f'renew-{runs[i]}.out').read_text()[-3000:]}\n"
                f"pebble, last lines:\n{fast_pebble.log_text()[-2000:]}")

    t0 = time.monotonic()
    # all three at once on an empty database: they also race to create the schema and the slots
    procs = [start(i) for i in range(NODES)]
    victim = procs[0]
    victim_id = f"node0:{victim.pid}"
    store: Store | None = None
    try:
        deadline = time.monotonic() + 120
        while store is None:
            try:
                store = Store(url)
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        # kill node 0 once about a third of the certificates are done, at a moment when it holds
        # claims: freeze it (SIGSTOP), look, and kill it only if it is in the middle of renewals;
        # otherwise (between two certificates, or not started yet) let it go on and look again
        orphans: dict[str, datetime | None] = {}
        while not orphans:
            assert victim.poll() is None, "node 0 finished before it could be killed; raise PG_CERTS"
            assert time.monotonic() - t0 < 300, "too slow: node 0 not caught mid-renewal after 300 s"
            time.sleep(0.2)
            if sum(1 for s in store.slots() if s.current_version_id) < PG_CERTS // 3:
                continue
            victim.send_signal(signal.SIGSTOP)
            orphans = {s.hostname: s.lease_until for s in store.slots()
                       if s.lease_owner == victim_id and s.current_version_id is None}
            if not orphans:
                victim.send_signal(signal.SIGCONT)
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(30) == -signal.SIGKILL
        killed_at = utcnow()
        # the survivors run again whenever a run ends (a timer would), until everything is issued
        while sum(1 for s in store.slots() if s.current_version_id) < PG_CERTS:
            assert time.monotonic() - t0 < 600, "not everything issued after 600 s"
            for i in range(1, NODES):
                code = procs[i].poll()
                if code is not None:
                    assert code == 0, failed_run(i)
                    procs[i] = start(i)
            time.sleep(0.5)
        total = time.monotonic() - t0
        for i in range(1, NODES):
            assert procs[i].wait(300) == 0, failed_run(i)
    finally:
        for p in procs:
            stop(p, signal.SIGKILL, 10)

    assert store is not None
    per_slot = issued_per_slot(store)
    duplicates = sum(n - 1 for n in per_slot.values() if n > 1)
    assert len(per_slot) == PG_CERTS and duplicates == 0, {h: n for h, n in per_slot.items() if n != 1}
    # making a certificate current and logging it are one transaction: one event per certificate
    issued_events = store.events(kind="issued")
    assert len(issued_events) == PG_CERTS, len(issued_events)
    # taken over: every certificate node 0 was working on was made current by another node (the
    # `issued` event is written with it; the certificate itself may be node 0's, adopted)
    done_at = {e.hostname: e.ts for e in issued_events}
    takeover = max(done_at[h] for h in orphans) - killed_at
    lease_left = max(until for until in orphans.values() if until is not None) - killed_at
    assert lease_left.total_seconds() <= NODE_LEASE + 1
    # node 0 is "another machine" to the survivors: its work waits for its leases to run out
    assert takeover >= lease_left - timedelta(seconds=1), (takeover, lease_left)
    takeover_versions = [store.version(s.current_version_id) for s in store.slots() if s.hostname in orphans]
    own_keys = sum(1 for v in takeover_versions if v and not v.key_path.startswith(str(configs[0].parent)))
    # the CA's side: one order per certificate, plus at most one per interrupted certificate
    orders, certs = len(counter.orders()), len(counter.issued())
    assert PG_CERTS <= orders <= PG_CERTS + len(orphans), orders
    assert PG_CERTS <= certs <= PG_CERTS + len(orphans), certs
    print(f"\nTHREE-NODE postgres: {PG_CERTS} certificates in {total:.1f}s, duplicates {duplicates}; node 0 "
          f"killed holding {len(orphans)} claims (lease left {lease_left.total_seconds():.1f}s); taken over "
          f"{takeover.total_seconds():.1f}s after the kill; {own_keys} of them with a key of the taking node, "
          f"{len(orphans) - own_keys} reusing node 0's pending key (same file system here); pebble orders "
          f"{orders}, certificates {certs}; issued events {len(issued_events)}; survivor runs {runs[1:]}")
    store.close()
