#!/usr/bin/env bash
# Set up everything (Debian packages, Exim, .venv) and run the whole test suite:
# unit, integration (real pebble, Postfix, Exim, Dovecot, BIND, sshd, PostgreSQL, SMTP)
# and end-to-end.  Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The machine may point requests at the system CA bundle; certmgr passes its own trust explicitly.
# Test files run in parallel, one file per worker at a time (--dist loadfile keeps a file's
# module-scoped peers, such as its pebble, in one process); the tests wait on real servers more
# than they compute, so three workers suit a two-core machine.  CERTMGR_TEST_WORKERS=0 runs serially.
exec .venv/bin/python -m pytest -ra --durations=15 -n "${CERTMGR_TEST_WORKERS:-3}" --dist loadfile "$@"
