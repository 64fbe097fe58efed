"""Daemon benchmark: 1,000 managed certificates in a SQLite store.

Measures how long one scheduler tick takes (the renew check over every
certificate, then the reminder pass), and the daemon's idle CPU and memory
(read from /proc) once its first runs are done.  The certificates are rows
inserted directly (manual issuer: no network); nothing is due, as on a quiet day.

    python bench/daemon_bench.py [--certs 1000] [--idle 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from certmgr.config.load import load_config
from certmgr.lifecycle.renew import renew_many
from certmgr.notify.reminders import process
from certmgr.runtime import Runtime
from certmgr.store import CertVersion, Store, utcnow
from tests.peers.testca import manual_ca_config


def write_config(root: Path, n: int) -> Path:
    mtas = "".join(f'\n[[mta]]\nhostname = "mx{i:04d}.example.com"\nissuer = "corp"\nnotify = ["ops"]\n'
                   for i in range(n))
    return manual_ca_config(root, mtas, tables="""
[daemon]
renew_interval = 600
remind_interval = 300
probe_interval = 0   # the STARTTLS probe is measured on its own (it talks to the network)
metrics_listen = ""
""")


def populate(config: Path, n: int) -> float:
    cfg = load_config(config)
    cfg.settings.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    store = Store(cfg.settings.database)
    now = utcnow()
    t0 = time.perf_counter()
    for i, mta in enumerate(cfg.mtas):
        slot = store.sync_slot(mta.hostname, "rsa", "rsa-2048", mta.all_names, "corp")
        assert slot.id is not None
        v = store.add_version(CertVersion(
            managed_id=slot.id, serial=f"{i:032x}", subject_cn=mta.hostname, names=f'["{mta.hostname}"]',
            key_type="rsa-2048", key_alg="rsa", key_bits=2048, not_before=now - timedelta(days=10),
            not_after=now + timedelta(days=80), sha256=f"{i:064x}", issuer="corp", source="import",
            created_at=now - timedelta(days=10)))
        store.update_slot(slot.id, current_version_id=v.id, state="issued", last_result="success",
                          renew_at=now + timedelta(days=50))
    store.close()
    return time.perf_counter() - t0


def tick_times(config: Path, rounds: int) -> list[float]:
    rt = Runtime(load_config(config))
    times = []
    try:
        for _ in range(rounds):
            t0 = time.perf_counter()
            outcomes = renew_many(rt, [])
            sent = process(rt)
            times.append(time.perf_counter() - t0)
            assert len(outcomes) == len(rt.config.mtas) and not any(o.failed for o in outcomes)
            assert not sent, sent[:3]
    finally:
        rt.close()
    return times


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def proc_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def daemon_idle(config: Path, n: int, idle: float, log: Path) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "CERTMGR_CONFIG")}
    t0 = time.monotonic()
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "certmgr", "-c", str(config), "run"],
                                stderr=err, stdout=subprocess.DEVNULL, env=env)
    try:
        while f"renew: {n} certificates checked" not in log.read_text():
            if proc.poll() is not None or time.monotonic() - t0 > 600:
                raise RuntimeError(f"daemon did not finish its first run; see {log}")
            time.sleep(0.1)
        first_run = time.monotonic() - t0
        # let the other first runs (remind, probe, ari) finish: at 10,000 certificates the first
        # reminder pass takes several seconds after the first renew pass
        settle_until = time.monotonic() + 60
        while time.monotonic() < settle_until:
            c0 = proc_cpu(proc.pid)
            time.sleep(2)
            if proc_cpu(proc.pid) - c0 < 0.02:
                break
        cpu0, w0 = proc_cpu(proc.pid), time.monotonic()
        time.sleep(idle)
        cpu1, w1 = proc_cpu(proc.pid), time.monotonic()
        rss = proc_rss_mib(proc.pid)
        return {"first_run_s": first_run, "idle_cpu_pct": 100 * (cpu1 - cpu0) / (w1 - w0), "rss_mib": rss}
    finally:
        proc.terminate()
        proc.wait(60)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--certs", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--idle", type=float, default=30.0, help="seconds of idle measurement")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="certmgr-daemon-bench-") as tmp:
        root = Path(tmp)
        config = write_config(root, args.certs)
        fill = populate(config, args.certs)
        print(f"certificates:           {args.certs} (SQLite, manual issuer, none due)")
        print(f"populate store:         {fill:.1f} s")
        times = tick_times(config, args.rounds)
        print(f"tick (renew + remind):  first {times[0]:.2f} s, median {statistics.median(times):.2f} s "
              f"over {len(times)} rounds ({1000 * statistics.median(times) / args.certs:.2f} ms per certificate)")
        figures = daemon_idle(config, args.certs, args.idle, root / "daemon.log")
        print(f"daemon start -> first renew pass done: {figures['first_run_s']:.1f} s")
        print(f"daemon idle CPU:        {figures['idle_cpu_pct']:.2f} % of one core over {args.idle:.0f} s")
        print(f"daemon RSS:             {figures['rss_mib']:.1f} MiB")


if __name__ == "__main__":
    main()
