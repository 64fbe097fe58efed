"""The main job end to end on embedded defaults (run by scripts/demo.sh).

Starts a local pebble (ACME test CA) with pebble-challtestsrv as its DNS, writes
demo-state/certmgr.toml for two MTAs (mx1: RSA-2048; mx2: dual RSA-2048 +
ECDSA-P256 with an extra SAN), runs `certmgr renew` and prints `certmgr status`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.peers.pebble import running_pebble  # noqa: E402

STATE = ROOT / "demo-state"


def certmgr(config: Path, *args: str) -> int:
    print(f"\n$ certmgr -c {config.relative_to(ROOT)} {' '.join(args)}", flush=True)
    return subprocess.call([sys.executable, "-m", "certmgr", "-c", str(config), *args])


def main() -> int:
    if STATE.exists():
        shutil.rmtree(STATE)  # pebble forgets everything between runs: start clean too
    STATE.mkdir(mode=0o700)
    with running_pebble(STATE / "pebble") as pebble:
        config = STATE / "certmgr.toml"
        config.write_text(f"""\
[certmgr]
state_dir = "{STATE / 'state'}"
# database defaults to SQLite inside state_dir

[issuer.pebble]
type = "acme"
directory = "{pebble.directory_url}"
ca_bundle = "{pebble.ca_bundle}"
contact = ["mailto:postmaster@example.com"]
challenge = {{ type = "http-01", mode = "standalone", address = "127.0.0.1", port = {pebble.http_port} }}

[[mta]]
hostname = "mx1.example.com"
key = "rsa-2048"
issuer = "pebble"

[[mta]]
hostname = "mx2.example.com"
names = ["mail.example.com"]
key = ["rsa-2048", "ecdsa-p256"]
issuer = "pebble"
""")
        rc = certmgr(config, "validate")
        rc = rc or certmgr(config, "renew")
        certmgr(config, "status")
        print("\nA second `certmgr renew` finds nothing due:")
        rc = rc or certmgr(config, "renew")
    return rc


if __name__ == "__main__":
    sys.exit(main())
