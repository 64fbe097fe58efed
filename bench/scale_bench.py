"""Scale benchmark: every command a provider with thousands of MX hostnames runs, at N certificates.

    python bench/scale_bench.py [--counts 1000,10000] [--runs 5] [--pebble-runs 5]
                                [--skip-pebble] [--skip-pebble-1000] [--idle 20] [--keep DIR]

For each N the state is built through certmgr's own manual-CA path (`csr --batch`, then a local
test CA signs every CSR, then `import --batch`, which verifies each chain up to the test root
named in `[certmgr] trust`); no row is written directly.  ECDSA P-256 keys keep seeding fast.  Then each
row of the table below is measured N times and printed as median and best:

    status --json, renew (nothing due), renew --dry-run, validate, certmgr --version,
    metrics                     -- each a fresh `python -m certmgr` process, as a user runs it
    daemon tick                 -- in one process: the renew check over every certificate, then
                                   the reminder pass (what the daemon runs on its schedule)
    daemon RSS, idle CPU        -- a real `certmgr run`, read from /proc after its first runs
    20 certificates, fresh state dir, one `certmgr renew` (RSA-2048)  -- local pebble, real HTTP-01
    1,000 ECDSA certificates, one `certmgr renew`                     -- local pebble, real HTTP-01

Targets: status <= 0.5 s at 20 and <= 1.0 s at 10,000; renew with nothing due <= 2.0 s and
validate <= 1.0 s at 10,000; --version <= 0.1 s; daemon tick <= 1 s, RSS <= 150 MiB, idle CPU 0;
20 fresh certificates <= 2.0 s; 1,000 ECDSA <= 30 s wall and <= 25 ms CPU per certificate
beyond key generation.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


from tests.peers.testca import TestCA, manual_ca_config

CERTMGR = [sys.executable, "-m", "certmgr"]


def write_config(root: Path, n: int, ca: TestCA) -> Path:
    mtas = "".join(
        f'\n[[mta]]\nhostname = "mx{i:05d}.example.com"\nkey = "ecdsa-p256"\nissuer = "corp"\nnotify = ["ops"]\n'
        for i in range(n)
    )
    trust = ca.write_root(root / "root.pem")
    return manual_ca_config(root, mtas, certmgr=f'trust = "{trust}"', tables="""
[daemon]
renew_interval = 600
remind_interval = 300
probe_interval = 0   # the STARTTLS probe talks to the network; measured on its own
metrics_listen = ""
""")


def seed(config: Path, n: int, ca: TestCA) -> tuple[float, float]:
    """`certmgr csr --batch`, the test CA signs every CSR, then `certmgr import --batch`: two
    certmgr processes, each verifying and storing what it handles as the single-host commands
    do.  Returns the seconds the two certmgr processes took, and the CA's signing seconds."""
    csrs, issued = config.parent / "csrs", config.parent / "issued"
    t_csr = timed([*CERTMGR, "-c", str(config), "csr", "--batch", str(csrs)])
    t0 = time.perf_counter()
    issued.mkdir()
    for csr in csrs.glob("*.csr"):
        (issued / f"{csr.name.removesuffix('.csr')}.pem").write_bytes(ca.sign_csr(csr.read_bytes()))
    t_ca = time.perf_counter() - t0
    t_import = timed([*CERTMGR, "-c", str(config), "import", "--batch", str(issued)])
    return t_csr + t_import, t_ca


CPU: list[float] = []  # CPU seconds of each process timed() ran, for the rows' CPU column


def timed(argv: list[str], *, ok: tuple[int, ...] = (0,)) -> float:
    """Wall seconds of one fresh process (its CPU seconds go to CPU: the machine may be shared)."""
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "CERTMGR_CONFIG")}
    cpu0 = children_cpu()
    t0 = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    CPU.append(children_cpu() - cpu0)
    if r.returncode not in ok:
        raise RuntimeError(f"{' '.join(argv[2:])} exited {r.returncode}:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return wall


def report(label: str, samples: list[float], unit: str = "s", scale: float = 1.0,
           cpu: list[float] | None = None) -> None:
    cpu_col = f"   CPU median {statistics.median(cpu) * scale:7.3f} {unit}" if cpu else ""
    print(f"  {label:<46} median {statistics.median(samples) * scale:8.3f} {unit}   "
          f"best {min(samples) * scale:8.3f} {unit}{cpu_col}   ({len(samples)} runs)", flush=True)


def measure(label: str, runs: int, fn: Callable[[], float]) -> list[float]:
    CPU.clear()
    try:
        samples = [fn() for _ in range(runs)]
    except RuntimeError as e:
        print(f"  {label:<46} FAILED: {str(e).splitlines()[0]}", flush=True)
        return []
    report(label, samples, cpu=list(CPU))
    return samples


def version_row(runs: int) -> None:
    r = subprocess.run([*CERTMGR, "--version"], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"  {'certmgr --version':<46} does not exist (exit {r.returncode}); "
              "`certmgr --help` instead:", flush=True)
        measure("certmgr --help", runs, lambda: timed([*CERTMGR, "--help"]))
        return
    measure("certmgr --version", runs, lambda: timed([*CERTMGR, "--version"]))


def command_rows(config: Path, n: int, runs: int) -> None:
    c = [*CERTMGR, "-c", str(config)]
    measure(f"status --json ({n})", runs, lambda: timed([*c, "status", "--json"]))
    measure(f"renew, nothing due ({n})", runs, lambda: timed([*c, "renew", "--json"]))
    measure(f"renew --dry-run ({n})", runs, lambda: timed([*c, "renew", "--dry-run"]))
    measure(f"validate ({n} MTAs)", runs, lambda: timed([*c, "validate"]))
    measure(f"metrics ({n})", runs, lambda: timed([*c, "metrics"]))


def daemon_rows(config: Path, n: int, runs: int, idle: float) -> None:
    from daemon_bench import daemon_idle, tick_times

    times = tick_times(config, runs + 1)
    print(f"  {'daemon tick, first (cold caches)':<46} {times[0]:8.3f} s", flush=True)
    report(f"daemon tick, renew check + reminders ({n})", times[1:])
    figures = daemon_idle(config, n, idle, config.parent / "daemon.log")
    print(f"  {'daemon start -> first renew pass done':<46} {figures['first_run_s']:8.3f} s", flush=True)
    print(f"  {'daemon RSS':<46} {figures['rss_mib']:8.1f} MiB", flush=True)
    print(f"  {'daemon idle CPU over ' + format(idle, '.0f') + ' s':<46} {figures['idle_cpu_pct']:8.2f} % "
          "of one core", flush=True)


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def pebble_rows(tmp: Path, runs: int, skip_1000: bool) -> None:
    from renew_bench import config as pebble_config

    from tests.peers.pebble import running_pebble

    with running_pebble(tmp / "pebble") as pebble:
        for n, key, label in ((20, "rsa-2048", "20 RSA certificates, fresh state dir, `renew`"),
                              (1000, "ecdsa-p256", "1,000 ECDSA certificates, fresh state dir, `renew`")):
            if n == 1000 and skip_1000:
                continue
            walls, cpus = [], []
            for _run in range(runs):
                d = Path(tempfile.mkdtemp(dir=tmp, prefix=f"pebble-{n}-"))
                path = pebble_config(d, pebble, n, key)
                try:
                    walls.append(timed([*CERTMGR, "-c", str(path), "renew", "--json"]))
                except RuntimeError as e:
                    print(f"  {label:<46} FAILED: {str(e)[:500]}", flush=True)
                    break
                cpus.append(CPU[-1])
            if walls:
                report(label, walls)
                report(f"  certmgr CPU per certificate ({n})", [c / n for c in cpus], "ms", 1000.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", default="20,1000,10000")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--pebble-runs", type=int, default=5)
    ap.add_argument("--skip-pebble", action="store_true")
    ap.add_argument("--skip-pebble-1000", action="store_true")
    ap.add_argument("--skip-daemon", action="store_true")
    ap.add_argument("--idle", type=float, default=20.0, help="seconds of daemon idle measurement")
    ap.add_argument("--keep", metavar="DIR", help="build the states under DIR and keep them")
    ap.add_argument("--reuse", action="store_true", help="with --keep: measure the states already built there")
    args = ap.parse_args()
    ca = TestCA("scale bench")
    with tempfile.TemporaryDirectory(prefix="certmgr-scale-") as t:
        tmp = Path(args.keep or t)
        tmp.mkdir(parents=True, exist_ok=True)
        print(f"certmgr scale benchmark, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
        version_row(args.runs)
        for n in (int(c) for c in args.counts.split(",") if c):
            root = tmp / f"n{n}"
            if args.reuse and (root / "issued").is_dir():
                config = root / "certmgr.toml"
                print(f"N = {n}: the state built before in {root}", flush=True)
            else:
                root.mkdir()
                config = write_config(root, n, ca)
                took, signing = seed(config, n, ca)
                print(f"N = {n}: seeded {n} ECDSA certificates through `csr --batch` + `import --batch` in "
                      f"{took:.1f} s ({1000 * took / n:.1f} ms each; the test CA's signing, {signing:.1f} s, "
                      "not counted)", flush=True)
            command_rows(config, n, args.runs)
            if not args.skip_daemon:
                daemon_rows(config, n, args.runs, args.idle)
        if not args.skip_pebble:
            print("local pebble, real HTTP-01:", flush=True)
            pebble_rows(tmp, args.pebble_runs, args.skip_pebble_1000)


if __name__ == "__main__":
    main()
