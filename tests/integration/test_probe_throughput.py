"""Probe throughput against a local Postfix: 200 probes, sequential and with a thread pool.

Prints probes/second (run with ``-s`` to see the figures).  The assertions only
check that every probe succeeded and that the thread pool is not slower than a
single thread by more than noise, so the test stays meaningful on a busy machine.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from certmgr.probe.client import probe
from tests.peers.postfix import PostfixPeer, chain_file_pem
from tests.peers.testca import TestCA

pytestmark = pytest.mark.integration
HOST = "mx1.example.com"
N = 200


@pytest.fixture(scope="module")
def postfix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PostfixPeer, str, Path]]:
    root = tmp_path_factory.mktemp("throughput")
    ca = TestCA()
    bundle = ca.leaf(HOST)
    chain = root / "chain.pem"
    chain.write_bytes(chain_file_pem(bundle))
    chain.chmod(0o600)
    peer = PostfixPeer(root / "postfix", hostname=HOST, chain_files=[chain])
    peer.start()
    yield peer, bundle.sha256, ca.write_root(root / "root.pem")
    peer.stop()


def run(peer: PostfixPeer, sha: str, trust: Path, workers: int) -> float:
    def one(_: int) -> bool:
        r = probe("127.0.0.1", peer.port, servername=HOST, trust_file=trust, timeout=10)
        return r.certificate is not None and r.certificate.sha256 == sha and r.certificate.chain_valid

    start = time.perf_counter()
    if workers == 1:
        results = [one(i) for i in range(N)]
    else:
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(one, range(N)))
    elapsed = time.perf_counter() - start
    assert all(results), f"{results.count(False)} of {N} probes failed"
    return N / elapsed


def test_probe_throughput(postfix: tuple[PostfixPeer, str, Path]) -> None:
    peer, sha, trust = postfix
    run(peer, sha, trust, 1)  # warm up: smtpd processes, trust store cache
    sequential = run(peer, sha, trust, 1)
    pooled = run(peer, sha, trust, 8)
    print(f"\nprobe throughput, {N} STARTTLS probes against a local Postfix: "
          f"sequential {sequential:.1f}/s, 8 threads {pooled:.1f}/s")
    assert pooled > sequential * 0.5  # both ends share 2 CPU cores: threads gain little, must not lose much
