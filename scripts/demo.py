"""The main job end to end on embedded defaults (run by scripts/demo.sh).

Starts a local pebble (ACME test CA) with pebble-challtestsrv as its DNS and a
private Postfix on loopback for each of two MTAs (mx1: RSA-2048; mx2: dual
RSA-2048 + ECDSA-P256 with an extra SAN), each serving a throw-away certificate,
writes demo-state/certmgr.toml, runs `certmgr renew` (issue, deploy into Postfix,
verify over STARTTLS), prints `certmgr status` and `certmgr check`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.peers.pebble import Pebble, running_pebble  # noqa: E402
from tests.peers.postfix import PostfixPeer, write_chain_files  # noqa: E402
from tests.peers.testca import TestCA  # noqa: E402

STATE = ROOT / "demo-state"
MTAS = {"mx1.example.com": ((), ("rsa-2048",)),
        "mx2.example.com": (("mail.example.com",), ("rsa-2048", "ecdsa-p256"))}


def start_postfix(hostname: str, names: tuple[str, ...], keys: tuple[str, ...]) -> tuple[PostfixPeer, Path]:
    """A private Postfix for ``hostname`` serving throw-away certificates certmgr will replace."""
    root = STATE / hostname
    cert_dir = root / "certs"
    cert_dir.mkdir(parents=True)
    ca = TestCA("throw-away")
    files = write_chain_files(cert_dir, [ca.leaf(hostname, names, key_type=key) for key in keys])
    return PostfixPeer(root / "postfix", hostname=hostname, chain_files=files).start(), cert_dir


def certmgr(config: Path, *args: str) -> int:
    print(f"\n$ certmgr -c {config.relative_to(ROOT)} {' '.join(args)}", flush=True)
    return subprocess.call([sys.executable, "-m", "certmgr", "-c", str(config), *args])


def main() -> int:
    if STATE.exists():
        shutil.rmtree(STATE)  # pebble forgets everything between runs: start clean too
    STATE.mkdir(mode=0o700)
    peers: list[PostfixPeer] = []
    try:
        with running_pebble(STATE / "pebble") as pebble:
            return run(pebble, peers)
    finally:
        for peer in peers:
            peer.stop()


def run(pebble: Pebble, peers: list[PostfixPeer]) -> int:
    trust = STATE / "pebble-root.pem"
    trust.write_bytes(pebble.root_pem())
    sections = []
    for host, (names, keys) in MTAS.items():
        peer, cert_dir = start_postfix(host, names, keys)
        peers.append(peer)
        label = host.split(".")[0]
        sections.append(f"""
[deploy.{label}]
type = "postfix"
config_dir = "{peer.config_dir}"
cert_dir = "{cert_dir}"

[[mta]]
hostname = "{host}"
names = {list(names)!r}
key = {list(keys)!r}
issuer = "pebble"
deploy = ["{label}"]
smtp = "127.0.0.1:{peer.port}"
""".replace("'", '"'))
    config = STATE / "certmgr.toml"
    config.write_text(f"""\
[certmgr]
state_dir = "{STATE / 'state'}"
# database defaults to SQLite inside state_dir
trust = "{trust}"
# the demo's DNS (pebble-challtestsrv) answers 127.0.0.1 for every name
resolver = "{pebble.dns_server}"

{pebble.issuer_toml()}""" + "".join(sections))
    rc = certmgr(config, "validate")
    rc = rc or certmgr(config, "renew")
    certmgr(config, "status")
    rc = rc or certmgr(config, "check")
    print("\nA second `certmgr renew` finds nothing due:")
    rc = rc or certmgr(config, "renew")
    print(f"\ndemo {'succeeded' if rc == 0 else 'FAILED'}: state, config and logs are in {STATE}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
