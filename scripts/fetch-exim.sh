#!/bin/sh
# Unpack Debian's Exim 4.96 (exim4-base + exim4-daemon-light) into a private folder
# for the integration tests.  Exim and Postfix conflict as Debian packages (both are
# the system MTA), so Exim is never installed: its .debs are downloaded and unpacked.
# Idempotent: does nothing when the binary is already there.
set -eu
dest=${CERTMGR_EXIM_DIR:-/opt/certmgr-peers/exim}
# Debian's Exim is built with EXIM_USER=ref:Debian-exim and looks the user up at
# start, before reading any config: the user must exist (the package would create it).
if ! getent passwd Debian-exim >/dev/null; then
    useradd --system --user-group --no-create-home --home-dir /var/spool/exim4 \
        --shell /usr/sbin/nologin Debian-exim
fi
if [ -x "$dest/usr/sbin/exim4" ] && ls "$dest"/usr/lib/*/libidn.so.12 >/dev/null 2>&1; then
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# libidn12 is a library Exim links to that nothing else here pulls in; it is
# unpacked next to Exim and found through LD_LIBRARY_PATH (see tests/peers/exim.py).
# a fresh machine may have no package lists yet: fetch them once and try again
apt-get download exim4-base exim4-daemon-light libidn12 >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get download exim4-base exim4-daemon-light libidn12 >/dev/null; }
mkdir -p "$dest"
for deb in ./*.deb; do
    dpkg -x "$deb" "$dest"
done
test -x "$dest/usr/sbin/exim4"
echo "exim unpacked into $dest"
