"""Partner-check benchmark: N partner domains with one MX each, on loopback.

Every domain ``pNNN.partners.test`` has its own MX host ``mx.pNNN.partners.test``
in a real BIND zone, all pointing at one real Postfix (STARTTLS, a test-CA
certificate) on its own 127.x address, port 25.  Measures the wall time of one
``check_partners`` over all of them (MX, A/AAAA, a full STARTTLS handshake per
address, TLSA, MTA-STS and TLS-RPT lookups) with bounded concurrency.

    python bench/partners_bench.py [--domains 200] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from certmgr.config.model import PartnerSpec
from certmgr.partners.assess import judge
from certmgr.partners.check import CheckOptions, check_partners
from tests.peers.partners import partner_world

LIMIT_S = 10.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--domains", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args(argv)
    records = "".join(f"p{i:03d} IN MX 10 mx.p{i:03d}\nmx.p{i:03d} IN A {{good}}\n" for i in range(args.domains))
    with tempfile.TemporaryDirectory() as tmp, partner_world(Path(tmp), defects=("good",), records=records) as w:
        specs = [PartnerSpec(w.domain(f"p{i:03d}"), "encrypt") for i in range(args.domains)]
        opts = CheckOptions(resolver=w.resolver, trust_file=w.trust_file, timeout=10,
                            concurrency=args.concurrency)
        check_partners(specs[:2], opts)  # warm up: the system trust store is parsed once
        start = time.perf_counter()
        facts = check_partners(specs, opts)
        elapsed = time.perf_counter() - start
    now = datetime.now(UTC)
    statuses = [judge(f, now)[0] for f in facts]
    ok = statuses.count("ok")
    print(f"partners: {args.domains} domains, 1 MX each, concurrency {args.concurrency}: {elapsed:.2f} s "
          f"({elapsed / args.domains * 1000:.1f} ms per domain), {ok} ok, limit {LIMIT_S:.0f} s")
    return 0 if elapsed <= LIMIT_S and ok == args.domains else 1


if __name__ == "__main__":
    sys.exit(main())
