"""Time `certmgr validate` on a generated config of N [[mta]] tables (two keys each) spread over
included files, as a provider with one file per customer would write it.

    python bench/validate_bench.py [--mtas 10000] [--per-file 1,10] [--runs 5]

Prints the median and best of the runs for each layout.  Target: <= 1.0 s at 10,000 MTAs.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAIN = """\
[certmgr]
state_dir = "state"
include = ["conf.d/*.toml"]

[issuer.le]
type = "acme"
directory = "https://acme.example.net/directory"
contact = ["mailto:postmaster@example.com"]
challenge = { type = "http-01", mode = "standalone", port = 8080 }

[defaults]
issuer = "le"
key = ["rsa-2048", "ecdsa-p256"]
"""


def write_config(root: Path, mtas: int, per_file: int) -> Path:
    conf = root / "conf.d"
    conf.mkdir(parents=True)
    for first in range(0, mtas, per_file):
        text = "".join(f'[[mta]]\nhostname = "mx{i}.customer{i}.example"\n\n'
                       for i in range(first, min(mtas, first + per_file)))
        (conf / f"{first:06d}.toml").write_text(text)
    main = root / "certmgr.toml"
    main.write_text(MAIN)
    return main


def time_validate(main: Path, runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU (user + system) seconds of each run: on a shared machine the CPU time
    says what the wall time would be on an idle one."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "certmgr", "-c", str(main), "validate"],
                           capture_output=True, text=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if r.returncode != 0:
            sys.exit(f"validate failed: {r.stderr}")
    return walls, cpus


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mtas", type=int, default=10_000)
    ap.add_argument("--per-file", default="1,10", help="MTAs per included file, comma-separated layouts")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    for per_file in (int(x) for x in args.per_file.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            main_file = write_config(Path(tmp), args.mtas, per_file)
            walls, cpus = time_validate(main_file, args.runs)
        files = -(-args.mtas // per_file)
        print(f"validate {args.mtas} MTAs in {files} files ({per_file} per file), {args.runs} runs: "
              f"wall median {statistics.median(walls):.3f} s, best {min(walls):.3f} s; "
              f"CPU median {statistics.median(cpus):.3f} s, best {min(cpus):.3f} s")


if __name__ == "__main__":
    main()
