#!/usr/bin/env bash
# Set up everything (Debian packages, Exim, .venv) and run the whole test suite:
# unit, integration (real pebble, Postfix, Exim, Dovecot, BIND, sshd, PostgreSQL, SMTP)
# and end-to-end.  Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The machine may point requests at the system CA bundle; certmgr passes its own trust explicitly.
exec .venv/bin/python -m pytest -ra --durations=15 "$@"
