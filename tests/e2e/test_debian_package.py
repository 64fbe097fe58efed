"""The Debian package, as the README installs it: built from this checkout with
scripts/build-deb.sh, installed with apt, then run as the unprivileged ``certmgr``
user (as the systemd units run it) against a real pebble and a real private Postfix.

The package is installed system-wide on this machine for the module and purged
after (the ``certmgr`` system user stays, as Debian packages leave their users).
No systemd runs here, so Postfix is reloaded the way the README shows for hosts
without polkit: ``sudo -n postfix -c DIR reload``, allowed to the certmgr user by a
sudoers rule for exactly that command.
"""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from certmgr.probe.client import probe
from tests.peers.dovecot import DovecotPeer
from tests.peers.pebble import Pebble
from tests.peers.postfix import PostfixPeer, chain_file_pem, wait_until, write_chain_files
from tests.peers.testca import TestCA
from tests.peers.util import require_binary

# the module's first test also builds the package (a virtualenv and every wheel): minutes, not seconds
pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]
REPO = Path(__file__).resolve().parents[2]
HOST = "mx1.example.com"
CONFIG = Path("/etc/certmgr/certmgr.toml")
USER_ENV = ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/var/lib/certmgr", "LANG=C.UTF-8"]


def _apt(*args: str) -> None:
    r = subprocess.run(["apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", *args], capture_output=True,
                       text=True, timeout=900, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    assert r.returncode == 0, f"apt-get {' '.join(args)}: exit {r.returncode}\n{r.stdout[-2000:]}{r.stderr[-2000:]}"


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.fail("installing the package needs root")
    require_binary("dpkg-deb")
    require_binary("sudo")
    out = tmp_path_factory.mktemp("dist")
    r = subprocess.run([str(REPO / "scripts/build-deb.sh"), str(out)], capture_output=True, text=True,
                       timeout=1800)
    assert r.returncode == 0, f"build-deb.sh: exit {r.returncode}\n{r.stderr[-3000:]}"
    deb = Path(r.stdout.strip().splitlines()[-1])
    assert deb.parent == out and deb.name.startswith("certmgr_") and deb.suffix == ".deb", r.stdout
    saved = CONFIG.read_bytes() if CONFIG.exists() else None
    _apt("install", str(deb))
    try:
        yield deb
    finally:
        if saved is not None:
            CONFIG.write_bytes(saved)
        else:
            CONFIG.unlink(missing_ok=True)
        if saved is None:
            _apt("purge", "certmgr")


def as_certmgr(*args: str, check: int | None = 0) -> subprocess.CompletedProcess[str]:
    """``/usr/bin/certmgr ARGS`` as the certmgr user, with a clean environment like the unit's."""
    r = subprocess.run(["runuser", "-u", "certmgr", "--", *USER_ENV, "/usr/bin/certmgr", *args],
                       capture_output=True, text=True, timeout=300, cwd="/")
    if check is not None:
        assert r.returncode == check, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


class Site:
    """A private Postfix whose certificate directory belongs to the certmgr user, and
    /etc/certmgr/certmgr.toml (root:certmgr 0640, as the README says) pointing at it."""

    def __init__(self, pebble: Pebble) -> None:
        self.user = pwd.getpwnam("certmgr")
        # pytest's tmp dirs are 0700 root: the certmgr user must read the config dir, the CA bundles
        self.root = Path(tempfile.mkdtemp(prefix="certmgr-deb-"))
        self.root.chmod(0o755)
        self.pebble = pebble
        self.cert_dir = self._owned(self.root / "certs")
        self.state_dir = self._owned(self.root / "state")
        self.ca_bundle = self.root / "pebble-tls-ca.pem"
        shutil.copyfile(pebble.ca_bundle, self.ca_bundle)
        self.trust = self.root / "trust.pem"
        self.trust.write_bytes(pebble.root_pem())
        for f in (self.ca_bundle, self.trust):
            f.chmod(0o644)
        self.old = TestCA("previous CA").leaf(HOST, key_type="rsa-2048")
        files = write_chain_files(self.cert_dir, [self.old])
        for f in files:
            os.chown(f, self.user.pw_uid, self.user.pw_gid)
        self.chain_file = files[0]
        self.peer = PostfixPeer(self.root / "postfix", hostname=HOST, chain_files=files)
        # a Dovecot too, whose snippet (ssl_cert/ssl_key) and cert dir certmgr writes
        self.dovecot_dir = self._owned(self.root / "dovecot")
        self.dovecot_dir.chmod(0o755)
        self.dovecot_certs = self._owned(self.root / "dovecot-certs")
        crt, key = self.dovecot_certs / f"{HOST}.rsa.crt", self.dovecot_certs / f"{HOST}.rsa.key"
        crt.write_bytes(self.old.fullchain_pem)
        key.write_bytes(self.old.key_pem)
        for f, mode in ((crt, 0o644), (key, 0o600)):
            f.chmod(mode)
            os.chown(f, self.user.pw_uid, self.user.pw_gid)
        self.dovecot = DovecotPeer(self.dovecot_dir, cert=crt, key=key)
        self.sudoers = Path(f"/etc/sudoers.d/certmgr-test-{secrets.token_hex(4)}")

    def _owned(self, path: Path) -> Path:
        path.mkdir(mode=0o700)
        os.chown(path, self.user.pw_uid, self.user.pw_gid)
        return path

    @property
    def postfix_reload(self) -> list[str]:
        return ["sudo", "-n", "/usr/sbin/postfix", "-c", str(self.peer.config_dir), "reload"]

    @property
    def dovecot_reload(self) -> list[str]:
        return ["sudo", "-n", "/usr/bin/doveadm", "-c", str(self.dovecot.conf), "reload"]

    def start(self) -> Site:
        self.peer.start()
        self.dovecot.start()
        self.dovecot.snippet.chmod(0o644)
        os.chown(self.dovecot.snippet, self.user.pw_uid, self.user.pw_gid)
        rule = "".join(f"certmgr ALL=(root) NOPASSWD: {' '.join(c[2:])}\n"
                       for c in (self.postfix_reload, self.dovecot_reload))
        tmp = self.sudoers.with_name(self.sudoers.name + ".new")  # sudo ignores names with a dot
        tmp.write_text(rule)
        tmp.chmod(0o440)
        subprocess.run(["visudo", "-cqf", str(tmp)], check=True)
        tmp.rename(self.sudoers)
        return self

    def write_config(self, *, reload_command: list[str] | None, dovecot: bool = False) -> None:
        issuer = self.pebble.issuer_toml().replace(str(self.pebble.ca_bundle), str(self.ca_bundle))
        reload = "" if reload_command is None else f"reload_command = {_toml(reload_command)}\n"
        CONFIG.write_text(f"""\
[certmgr]
state_dir = "{self.state_dir}"
resolver = "{self.pebble.dns_server}"
trust = "{self.trust}"

{issuer}
[deploy.edge]
type = "postfix"
config_dir = "{self.peer.config_dir}"
cert_dir = "{self.cert_dir}"
{reload}
[deploy.imap]
type = "dovecot"
cert_dir = "{self.dovecot_certs}"
config_file = "{self.dovecot.snippet}"
dovecot_config = "{self.dovecot.conf}"
reload_command = {_toml(self.dovecot_reload)}
verify = "127.0.0.1:{self.dovecot.imap_port}"

[[mta]]
hostname = "{HOST}"
key = "rsa-2048"
issuer = "pebble"
deploy = {_toml(["edge", "imap"] if dovecot else ["edge"])}
smtp = "127.0.0.1:{self.peer.port}"
""")
        os.chown(CONFIG, 0, grp.getgrnam("certmgr").gr_gid)
        CONFIG.chmod(0o640)

    def served(self) -> str | None:
        r = probe("127.0.0.1", self.peer.port, servername=HOST, timeout=5)
        return r.certificate.sha256 if r.certificate else None

    def served_imap(self) -> str | None:
        r = probe("127.0.0.1", self.dovecot.imap_port, protocol="imap", servername=HOST, timeout=5)
        return r.certificate.sha256 if r.certificate else None

    def stop(self) -> None:
        self.sudoers.unlink(missing_ok=True)
        self.dovecot.stop()
        self.peer.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def site(package: Path, pebble: Pebble) -> Iterator[Site]:
    s = Site(pebble)
    try:
        yield s.start()
    finally:
        s.stop()


def _mode(path: str) -> tuple[str, str, int]:
    st = os.stat(path)
    return pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name, stat.S_IMODE(st.st_mode)


def test_package_installs_the_command_the_user_the_dirs_and_the_units(package: Path) -> None:
    fields = subprocess.run(["dpkg-deb", "-f", str(package), "Package", "Depends"], capture_output=True,
                            text=True, check=True).stdout
    assert "Package: certmgr" in fields and "python3 (>= 3.11)" in fields, fields
    assert Path("/usr/bin/certmgr").resolve() == Path("/opt/certmgr/bin/certmgr")
    user = pwd.getpwnam("certmgr")
    assert user.pw_dir == "/var/lib/certmgr" and user.pw_shell == "/usr/sbin/nologin" and user.pw_uid < 1000
    assert _mode("/etc/certmgr") == ("root", "certmgr", 0o750)
    assert _mode("/var/lib/certmgr") == ("certmgr", "certmgr", 0o700)
    for unit in ("certmgr.service", "certmgr-renew.service", "certmgr-renew.timer"):
        shipped = Path("/lib/systemd/system") / unit
        assert shipped.read_text() == (REPO / "systemd" / unit).read_text(), unit
        assert "ExecStart=/usr/bin/certmgr" in shipped.read_text() or unit.endswith(".timer")
    assert Path("/usr/share/certmgr/certmgr.toml.example").exists()
    # the venv names only its installed location, and runs for an unprivileged user
    r = as_certmgr("providers")
    assert "postfix" in r.stdout and "acme" in r.stdout
    # the shipped example validates as it stands
    assert "OK" in as_certmgr("-c", "/usr/share/certmgr/certmgr.toml.example", "validate").stdout


def test_unprivileged_validate_renew_and_deploy_into_a_real_postfix(site: Site) -> None:
    site.write_config(reload_command=site.postfix_reload)
    assert as_certmgr("validate").stdout.startswith(str(CONFIG))  # the default path, readable
    assert site.served() == site.old.sha256

    out = _json(as_certmgr("renew", "--json").stdout)
    assert [o["action"] for o in out] == ["issued", "deployed"], out
    rows = _json(as_certmgr("status", "--json").stdout)
    assert len(rows) == 1 and rows[0]["deployed"] and rows[0]["state"] == "verified", rows
    new = rows[0]["sha256"]
    assert new != site.old.sha256 and site.served() == new
    # the files certmgr wrote belong to it and stay private
    assert _mode(str(site.chain_file)) == ("certmgr", "certmgr", 0o600)

    again = _json(as_certmgr("deploy", "--json").stdout)
    assert [r["ok"] for r in again] == [True], again
    assert site.served() == new


def test_unprivileged_failed_config_test_says_why(site: Site) -> None:
    site.write_config(reload_command=site.postfix_reload)
    as_certmgr("renew")
    deployed = site.chain_file.read_bytes()
    main_cf = site.peer.config_dir / "main.cf"
    good = main_cf.read_text()
    main_cf.write_text("this line has no equals sign\n" + good)
    try:
        r = as_certmgr("deploy", "--json", check=1)
    finally:
        main_cf.write_text(good)
    [report] = _json(r.stdout)
    assert not report["ok"] and report["rolled_back"], report
    message = report["message"]
    assert isinstance(message, str), report
    # the command that could run unprivileged, and Postfix's own words with file and line
    assert f"postfix config test `postconf -c {site.peer.config_dir} -n` failed with exit code 1" in message
    assert f"{main_cf}, line 1: missing '=' after attribute name" in message, message
    assert site.chain_file.read_bytes() == deployed  # the previous files are back


def test_unprivileged_default_reload_explains_that_it_needs_root(site: Site) -> None:
    site.write_config(reload_command=None)  # the default: postfix -c DIR reload, for root only
    r = as_certmgr("renew", "--json", check=1)
    [issued, deployment] = _json(r.stdout)
    assert issued["action"] == "issued" and deployment["action"] in ("rolled-back", "deploy-failed"), r.stdout
    detail = str(deployment)
    assert f"postfix reload `postfix -c {site.peer.config_dir} reload` failed with exit code 1" in detail
    assert "for root only" in detail and '"sudo", "-n"' in detail, detail
    assert site.chain_file.read_bytes() == chain_file_pem(site.old)
    wait_until(lambda: site.served() == site.old.sha256, what="the previous certificate")


def test_unprivileged_deploy_into_dovecot_and_its_config_test(site: Site) -> None:
    """doveconf -n, Dovecot's config test, runs as the certmgr user; its error reaches the message."""
    site.write_config(reload_command=site.postfix_reload, dovecot=True)
    out = _json(as_certmgr("renew", "--json").stdout)
    assert [o["action"] for o in out] == ["issued", "deployed", "deployed"], out  # one per target
    [row] = _json(as_certmgr("status", "--json").stdout)
    assert site.served_imap() == row["sha256"] == site.served()

    conf = site.dovecot.conf
    good = conf.read_text()
    conf.write_text(good + "bogus_setting = 1\n")
    try:
        r = as_certmgr("deploy", "--json", check=1)
    finally:
        conf.write_text(good)
    reports = {rep["target"]: rep for rep in _json(r.stdout)}
    assert reports["edge"]["ok"] and not reports["imap"]["ok"], reports
    message = str(reports["imap"]["message"])
    assert f"dovecot config test `doveconf -c {conf} -n` failed with exit code" in message, message
    assert "Unknown setting: bogus_setting" in message, message
    assert site.served_imap() == row["sha256"]


def _toml(argv: list[str]) -> str:
    return "[" + ", ".join(f'"{a}"' for a in argv) + "]"


def _json(text: str) -> list[dict[str, object]]:
    import json

    value = json.loads(text)
    assert isinstance(value, list)
    return value
