#!/usr/bin/env bash
# Build a Debian package of certmgr from this checkout: dist/certmgr_<version>_<arch>.deb
#
#   ./scripts/build-deb.sh [OUTDIR]          then:  apt install ./dist/certmgr_*.deb
#
# The package holds a virtualenv in /opt/certmgr (certmgr, its dependencies and the
# PostgreSQL driver) on top of Debian's python3, so nothing is installed into the
# system Python (PEP 668), plus /usr/bin/certmgr, the systemd units and an example
# config.  Its maintainer scripts create the system user "certmgr", /etc/certmgr
# (root:certmgr 0750: the user reads its config, cannot change it) and
# /var/lib/certmgr (certmgr:certmgr 0700).  The units are installed, not enabled:
# write /etc/certmgr/certmgr.toml first.  Needs python3-venv, dpkg-deb and the
# Python package index (or pip's configured mirror) at build time.
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=$PWD
out=$(realpath -m "${1:-dist}")

PY=${PYTHON:-/usr/bin/python3}
version=$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
pyver=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
arch=$(dpkg --print-architecture)
prefix=/opt/certmgr

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
venv=$root$prefix

# The virtualenv is built in the staging tree, then every path that names the
# staging tree (script shebangs, activate) is rewritten to /opt/certmgr.  Its
# python is a symlink to Debian's /usr/bin/python3<minor>, hence the Depends below.
"$PY" -m venv "$venv"
"$venv/bin/python" -m pip install -q --no-warn-script-location "$checkout[postgresql]"
"$venv/bin/python" -m pip uninstall -q -y pip setuptools wheel >/dev/null 2>&1 || true
grep -rlI --null -F "$root" "$venv/bin" "$venv/pyvenv.cfg" | xargs -0 -r sed -i "s|$root||g"
find "$venv" -name __pycache__ -type d -prune -exec rm -rf {} +
# byte-compile with the installed paths in tracebacks (the certmgr user cannot write here)
"$venv/bin/python" -m compileall -q -s "$root" -p / "$venv/lib" >/dev/null
if grep -rqI -F "$root" "$venv"; then
    echo "build-deb: the staging path is still named in:" >&2
    grep -rlI -F "$root" "$venv" >&2
    exit 1
fi

install -d "$root/usr/bin" "$root/lib/systemd/system" "$root/usr/share/doc/certmgr" "$root/usr/share/certmgr"
ln -s "$prefix/bin/certmgr" "$root/usr/bin/certmgr"
install -m 0644 systemd/certmgr.service systemd/certmgr-renew.service systemd/certmgr-renew.timer \
    "$root/lib/systemd/system/"
install -m 0644 README.md "$root/usr/share/doc/certmgr/README.md"
install -m 0644 examples/certmgr.toml "$root/usr/share/certmgr/certmgr.toml.example"

install -d "$root/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<EOF
Package: certmgr
Version: $version
Architecture: $arch
Maintainer: certmgr maintainers <postmaster@localhost>
Installed-Size: $size
Depends: python3 (>= $pyver), python3 (<< ${pyver%.*}.$(( ${pyver#*.} + 1 ))), passwd, ca-certificates
Suggests: postfix | exim4 | dovecot-core, polkitd
Section: admin
Priority: optional
Description: certificate lifecycle manager for mail servers
 Renews certificates through ACME or a manual CA, deploys them into Postfix,
 Exim, Dovecot, Exchange or any command, verifies over STARTTLS that the MTA
 serves them, and reminds people before anything expires.
EOF

cat > "$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    if ! getent group certmgr >/dev/null; then
        groupadd --system certmgr
    fi
    if ! getent passwd certmgr >/dev/null; then
        useradd --system --gid certmgr --home-dir /var/lib/certmgr --no-create-home \
            --shell /usr/sbin/nologin --comment "certmgr certificate manager" certmgr
    fi
    # the config is root's to write and the certmgr user's to read
    install -d -m 0750 -o root -g certmgr /etc/certmgr
    chown root:certmgr /etc/certmgr
    chmod 0750 /etc/certmgr
    install -d -m 0700 -o certmgr -g certmgr /var/lib/certmgr
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload || true
    fi
    if [ ! -e /etc/certmgr/certmgr.toml ]; then
        echo "certmgr: write /etc/certmgr/certmgr.toml (root:certmgr 0640; example in" \
             "/usr/share/certmgr/certmgr.toml.example), run 'certmgr validate', then" \
             "'systemctl enable --now certmgr.service' (or certmgr-renew.timer)."
    fi
fi
exit 0
EOF

cat > "$root/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl disable --now certmgr.service certmgr-renew.timer >/dev/null 2>&1 || true
fi
exit 0
EOF

cat > "$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
# On purge the config dir goes if it is empty; keys and certificates in
# /var/lib/certmgr and the certmgr user are kept (they may still be in use).
if [ "$1" = purge ]; then
    rmdir --ignore-fail-on-non-empty /etc/certmgr 2>/dev/null || true
fi
exit 0
EOF
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"

mkdir -p "$out"
deb="$out/certmgr_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zgzip --build "$root" "$deb" >/dev/null
echo "$deb"
