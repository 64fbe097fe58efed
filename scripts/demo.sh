#!/usr/bin/env bash
# Set up everything, then run the main job end to end on embedded defaults: SQLite in
# ./demo-state, a local pebble as the ACME CA (real HTTP-01), `certmgr renew` for the
# demo MTAs, then `certmgr status`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
