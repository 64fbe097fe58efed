#!/usr/bin/env bash
# Install everything certmgr, its demo and its tests need on a Debian 12 machine:
# the Debian packages of the real peers (pebble, Postfix, BIND, Dovecot, sshd,
# PostgreSQL, swaks), Exim unpacked beside Postfix, and a virtualenv in .venv
# with certmgr and its test dependencies.  Idempotent; run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=(pebble postfix bind9 bind9-dnsutils dovecot-core dovecot-imapd dovecot-pop3d openssh-server openssh-client
      swaks postgresql systemd openssl ca-certificates python3-venv procps sudo iproute2 util-linux nginx
      pflogsumm prometheus systemd-journal-remote libcairo2)

missing=()
for p in "${DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Postfix asks what kind of mail system this is; the tests run private instances only.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update -qq
    # keep the packages' own services from starting: the tests run private instances
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Exim conflicts with Postfix as a Debian package: unpack it privately instead.
sh scripts/fetch-exim.sh

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'
echo "setup: done ($(.venv/bin/certmgr --help >/dev/null && echo certmgr installed in .venv))"
