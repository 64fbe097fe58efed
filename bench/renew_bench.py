"""Issue N certificates (one name each) from a local pebble with real HTTP-01 in one
`certmgr renew`, and print the wall time per certificate and in total.

    python bench/renew_bench.py [--counts 1,20] [--key rsa-2048] [--runs 3]

Targets: one certificate <= 0.5 s wall, 20 certificates <= 3 s wall.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.peers.pebble import running_pebble


def config(tmp: Path, pebble: object, n: int, key: str) -> Path:
    mtas = "".join(
        f'\n[[mta]]\nhostname = "mx{i}.bench.example"\nkey = "{key}"\nissuer = "pebble"\n' for i in range(n)
    )
    path = tmp / "certmgr.toml"
    path.write_text(f"""
[certmgr]
state_dir = "{tmp / 'state'}"
concurrency = 32

[issuer.pebble]
type = "acme"
directory = "{pebble.directory_url}"
ca_bundle = "{pebble.ca_bundle}"
challenge = {{ type = "http-01", mode = "standalone", address = "127.0.0.1", port = {pebble.http_port} }}
{mtas}""")
    return path


def renew(path: Path) -> tuple[float, list[dict[str, str]]]:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "certmgr", "-c", str(path), "renew", "--force", "--json"],
                       capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"renew failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return wall, json.loads(r.stdout)


def renew_in_process(path: Path) -> float:
    """The same renewal inside one process (as the daemon runs it): no interpreter start, no imports."""
    from certmgr.config.load import load_config
    from certmgr.lifecycle.renew import renew_many
    from certmgr.runtime import Runtime

    rt = Runtime(load_config(path))
    try:
        t0 = time.perf_counter()
        out = renew_many(rt, [], force=True)
        wall = time.perf_counter() - t0
    finally:
        rt.close()
    assert all(o.action == "issued" for o in out), out
    return wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", default="1,20")
    ap.add_argument("--key", default="rsa-2048")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d, running_pebble(Path(d) / "pebble") as pebble:
        print(f"certmgr renew against local pebble, real HTTP-01, key {args.key}, {args.runs} runs each")
        for n in (int(c) for c in args.counts.split(",")):
            tmp = Path(d) / f"n{n}"
            tmp.mkdir()
            path = config(tmp, pebble, n, args.key)
            renew(path)  # first run registers the ACME account and creates the database
            walls = []
            for _ in range(args.runs):
                wall, out = renew(path)
                assert sum(o["action"] == "issued" for o in out) == n, out
                walls.append(wall)
            best, median = min(walls), sorted(walls)[len(walls) // 2]
            print(f"  {n:3d} certificate(s), `certmgr renew` process: wall median {median:.2f} s "
                  f"(best {best:.2f} s), {median / n:.3f} s per certificate (interpreter start and imports included)")
            inproc = sorted(renew_in_process(path) for _ in range(args.runs))
            print(f"  {n:3d} certificate(s), in one running process: wall median {inproc[len(inproc) // 2]:.2f} s "
                  f"(best {inproc[0]:.2f} s)")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import certmgr.store, certmgr.lifecycle.issue, providers.issuers.acme"],
                   check=True)
    print(f"  for reference: starting Python and importing the store and the ACME client takes "
          f"{time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
