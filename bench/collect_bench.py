"""Collector benchmark: a generated Postfix log of 1,000,000 lines.

The lines have the shapes a real Postfix 3.7 writes (see
tests/integration/test_monitor_postfix_log.py): per message an inbound session
(connect, STARTTLS or not, client=, cleanup, qmgr, disconnect) and an outbound
delivery (TLS line at a mix of levels or none, to=, removed), a thousand
domains, and one line in a thousand that is no syslog line.  Measures one
``collect_log`` run into a fresh SQLite store (wall time, peak memory of the
process) and, as an anchor, ``pflogsumm`` on the same file.

    python bench/collect_bench.py [--lines 1000000] [--keep FILE] [--log FILE] [--no-anchor]

``--log FILE`` reads a log kept by an earlier ``--keep`` run instead of
generating one (so that ``farm-bench`` times the collect, with ``pflogsumm FILE``
as ``--vs``); ``--no-anchor`` leaves pflogsumm out.

Wall time depends on what else runs; CPU time is printed beside it.
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from certmgr.monitor.collector import collect_log
from certmgr.store.monitor import MonitorStore

LEVELS = ("Verified", "Trusted", "Untrusted", "none")
CIPHER = "TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits)"


def generate(path: Path, lines: int, seed: int = 1) -> Counter[tuple[str, str]]:
    """Write about ``lines`` lines; return the sessions written per (direction, level)."""
    rnd = random.Random(seed)
    expected: Counter[tuple[str, str]] = Counter()
    written = 0
    qid = 0x10000
    with open(path, "w") as f:
        while written < lines:
            qid += 1
            q = f"{qid:X}"
            sec = (qid // 20) % 86400
            ts = f"Nov 29 {sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d} mx"
            pid = 1000 + qid % 50
            client = f"mail{qid % 997}.sender{qid % 1000}.example"
            addr = f"192.0.2.{qid % 250 + 1}"
            tls_in = rnd.random() < 0.85
            out = [f"{ts} postfix/smtpd[{pid}]: connect from {client}[{addr}]\n"]
            if tls_in:
                out.append(f"{ts} postfix/smtpd[{pid}]: Anonymous TLS connection established from "
                           f"{client}[{addr}]: TLSv1.3 with cipher {CIPHER}\n")
            out += [
                f"{ts} postfix/smtpd[{pid}]: {q}: client={client}[{addr}]\n",
                f"{ts} postfix/cleanup[{pid + 1}]: {q}: message-id=<{q}@sender.example>\n",
                f"{ts} postfix/qmgr[99]: {q}: from=<a@sender.example>, size=4242, nrcpt=1 (queue active)\n",
                f"{ts} postfix/smtpd[{pid}]: disconnect from {client}[{addr}] ehlo={2 if tls_in else 1} "
                f"{'starttls=1 ' if tls_in else ''}mail=1 rcpt=1 data=1 quit=1 commands={7 if tls_in else 5}\n",
            ]
            expected[("inbound", "Anonymous" if tls_in else "none")] += 1
            level = rnd.choices(LEVELS, weights=(40, 30, 20, 10))[0]
            spid = 2000 + qid % 30
            rx = f"mx{qid % 1000}.rcpt{qid % 1000}.example"
            if level != "none":
                out.append(f"{ts} postfix/smtp[{spid}]: {level} TLS connection established to {rx}[198.51.100.7]:25:"
                           f" TLSv1.3 with cipher {CIPHER}\n")
            out += [
                f"{ts} postfix/smtp[{spid}]: {q}: to=<u@rcpt{qid % 1000}.example>, relay={rx}[198.51.100.7]:25, "
                "delay=0.2, delays=0.01/0/0.1/0.09, dsn=2.0.0, status=sent (250 2.0.0 Ok)\n",
                f"{ts} postfix/qmgr[99]: {q}: removed\n",
            ]
            expected[("outbound", level)] += 1
            if qid % 100 == 0:
                out.append("-- a line that is not syslog --\n")
            f.writelines(out)
            written += len(out)
    return expected


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--keep", type=Path, help="write the generated log here and keep it")
    ap.add_argument("--log", type=Path, help="read this log (kept by --keep) instead of generating one")
    ap.add_argument("--no-anchor", action="store_true", help="do not run pflogsumm")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        log = args.log or args.keep or Path(tmp) / "maillog"
        expected: Counter[tuple[str, str]] | None = None
        if args.log is None:
            t0 = time.perf_counter()
            expected = generate(log, args.lines)
            lines = sum(1 for _ in open(log, "rb"))
            print(f"generated {lines} lines, {sum(expected.values())} sessions in {time.perf_counter() - t0:.1f} s")
        store = MonitorStore.at(Path(tmp) / "monitor.sqlite")
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0, c0 = time.perf_counter(), time.process_time()
        result = collect_log(log, store)
        took, cpu = time.perf_counter() - t0, time.process_time() - c0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"collect: {result.lines} lines, {result.sessions} sessions, {result.unparsed} unparsed in "
              f"{took:.2f} s wall, {cpu:.2f} s CPU ({result.lines / took:,.0f} lines/s); peak RSS {rss / 1024:.0f} MiB "
              f"(+{(rss - rss0) / 1024:.0f} MiB during collect)")
        assert expected is None or result.sessions == sum(expected.values()), (result.sessions, expected)
        pflogsumm = shutil.which("pflogsumm")
        if args.no_anchor:
            pass
        elif pflogsumm:
            t0 = time.perf_counter()
            proc = subprocess.run(["bash", "-c", 'TIMEFORMAT=%U+%S; time "$0" "$1" >/dev/null 2>&1', pflogsumm,
                                   str(log)], capture_output=True, text=True, check=True)
            user, system = (float(x) for x in proc.stderr.strip().splitlines()[-1].split("+"))
            print(f"pflogsumm on the same file: {time.perf_counter() - t0:.2f} s wall, {user + system:.2f} s CPU")
        else:
            print("pflogsumm not installed (Debian package pflogsumm): no anchor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
