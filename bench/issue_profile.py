"""Where the CPU of an issuance goes: N certificates from a local pebble (real HTTP-01) in one
process, each renewal worker thread profiled on its own CPU clock (cProfile with
``time.thread_time``; a profile of the main thread alone sees none of it).

    python bench/issue_profile.py [--count 1000] [--key ecdsa-p256] [--top 40] [--out FILE]

Prints the process CPU without the profiler first (the figure to quote), then, from a second
run under the profiler, the share of the workers' CPU by part (the profiler inflates code that
makes many small calls, so read the shares, not the milliseconds) and the top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from renew_bench import config

from tests.peers.pebble import running_pebble

#: parts of an issuance: (file, function) of their entry points, or a folder of certmgr's whose
#: code never calls back into itself from outside (counting at calls into a library that calls
#: back into itself would count the same time twice)
PARTS = {
    "HTTP to the CA (requests, urllib3, TLS)": ("/requests/sessions.py", "request"),
    "JWS signing (josepy, for the acme library)": ("/acme/client.py", "_wrap_in_jws"),
    "store: database and files (certmgr.store)": ("/certmgr/store/", None),
    "keys, CSR, certificate checks (certmgr.pki)": ("/certmgr/pki/", None),
}


def in_part(func: tuple[str, int, str], where: str, name: str | None) -> bool:
    return where in func[0] and (name is None or func[2] == name)


def share(entries: dict[Any, Any], where: str, name: str | None) -> float:
    """CPU seconds spent in the part, counted at the calls that enter it."""
    return float(sum(ct for func, (_cc, _nc, _tt, _ct, callers) in entries.items() if in_part(func, where, name)
                     for caller, (_c, _n, _t, ct) in callers.items() if not in_part(caller, where, name)))


def cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def run(directory: Path, pebble: Any, count: int, key: str, wrap: Callable[..., Any] | None) -> tuple[float, float]:
    from certmgr.config.load import load_config
    from certmgr.lifecycle import issue as issue_mod
    from certmgr.lifecycle import renew as renew_mod
    from certmgr.runtime import Runtime

    directory.mkdir()
    path = config(directory, pebble, count, key)
    original = issue_mod.renew_slot  # what renew_many calls for each slot, in its worker thread
    if wrap is not None:
        renew_mod.__dict__["renew_slot"] = wrap(original)
    try:
        with Runtime(load_config(path)) as rt:
            c0, t0 = cpu(), time.perf_counter()
            out = renew_mod.renew_many(rt, [])
            wall, used = time.perf_counter() - t0, cpu() - c0
    finally:
        renew_mod.__dict__["renew_slot"] = original
    assert sum(o.action == "issued" for o in out) == count, [o for o in out if o.action != "issued"][:3]
    return wall, used


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--key", default="ecdsa-p256")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--out", help="also write the merged profile here (pstats format)")
    args = ap.parse_args()
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()
    local = threading.local()

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        def profiled(*a: Any, **k: Any) -> Any:
            prof = getattr(local, "prof", None)
            if prof is None:
                prof = local.prof = cProfile.Profile(time.thread_time)
                with lock:
                    profiles.append(prof)
            prof.enable()
            try:
                return fn(*a, **k)
            finally:
                prof.disable()
        return profiled

    with tempfile.TemporaryDirectory() as d, running_pebble(Path(d) / "pebble") as pebble:
        wall, used = run(Path(d) / "plain", pebble, args.count, args.key, None)
        print(f"{args.count} {args.key} certificates in one process: wall {wall:.2f} s, CPU {used:.2f} s "
              f"({1000 * used / args.count:.1f} ms per certificate), no profiler")
        run(Path(d) / "profiled", pebble, args.count, args.key, wrap)
    stats = pstats.Stats(profiles[0])
    for prof in profiles[1:]:
        stats.add(prof)
    if args.out:
        stats.dump_stats(args.out)
    entries: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_cc, _nc, tt, _ct, _callers) in entries.values())
    print(f"renewal worker threads under the profiler: {total:.1f} s CPU; shares by part:")
    for part, (where, name) in PARTS.items():
        print(f"  {100 * share(entries, where, name) / total:5.1f} %  {part}")
    stats.sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
