"""Bad input through the real CLI: every corpus config, damaged key files, a broken state dir.

- each tests/corpus/configs/*.toml: `certmgr -c FILE validate` exits 2, stderr names the file
  and the table/key and says what is wrong; no traceback; nothing is written;
- after a real issuance against pebble, the key files in the state dir are damaged (truncated,
  corrupted, emptied, replaced by garbage or by a certificate): certmgr says which file, exits
  non-zero, prints no key bytes and no traceback, and changes no file and no certificate record;
- the state dir on a full disk (a tiny tmpfs) or a read-only mount: clear error, exit non-zero,
  no temp files, the database and the old key/certificate untouched.

Bad certificate imports are covered by tests/e2e/test_manual_import.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers.pebble import Pebble, running_pebble
from tests.peers.util import state_fingerprint

pytestmark = pytest.mark.integration

CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "configs"
CASES = sorted(CORPUS.glob("*.toml"))
HOST = "mx1.example.com"


def run_cli(config: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("CERTMGR_CONFIG", "CERTMGR_CRASH_AFTER")}
    return subprocess.run([sys.executable, "-m", "certmgr", "-c", str(config), *args],
                          capture_output=True, text=True, timeout=180, env={**base, **(env or {})})


# -- the config corpus -------------------------------------------------------------


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_validate_refuses_corpus_config(path: Path, tmp_path: Path) -> None:
    expect = re.match(r"^# expect: (.+)$", path.read_text(encoding="utf-8").splitlines()[0])
    assert expect, path
    copy = tmp_path / path.name
    shutil.copyfile(path, copy)
    r = run_cli(copy, "validate")
    assert r.returncode == 2, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert expect.group(1).strip() in r.stderr, r.stderr
    assert str(copy) in r.stderr, "the error names the file"
    if not path.stem.startswith("toml_"):
        assert re.search(r"\[[^\]]+\]", r.stderr), "the error names the table"
    assert sorted(p.name for p in tmp_path.iterdir()) == [copy.name], "validate writes nothing"


# -- damaged key files after a real issuance -----------------------------------------


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    with running_pebble(tmp_path_factory.mktemp("pebble")) as p:
        yield p


def write_config(tmp_path: Path, pebble: Pebble, *, state: Path, reuse_key: bool = False) -> Path:
    path = tmp_path / "certmgr.toml"
    path.write_text(f"""
[certmgr]
state_dir = "{state}"

{pebble.issuer_toml()}
[[mta]]
hostname = "{HOST}"
key = "rsa-2048"
issuer = "pebble"
reuse_key = {"true" if reuse_key else "false"}
""")
    return path


def state_digest(state: Path) -> dict[str, str]:
    """Every file in the state dir except the database (compared by content separately)."""
    return {str(p.relative_to(state)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(state.rglob("*")) if p.is_file() and not p.name.startswith("certmgr.db")}


def db_dump(db: Path, tables: tuple[str, ...] | None = None) -> str:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        lines = list(con.iterdump())
    finally:
        con.close()
    if tables:
        lines = [ln for ln in lines if any(f'INTO "{t}"' in ln for t in tables)]
    return "\n".join(lines)


def key_body_lines(pem: bytes) -> list[str]:
    return [ln for ln in pem.decode(errors="replace").splitlines() if ln and not ln.startswith("-----")]


def assert_no_key_bytes(text: str, pem: bytes) -> None:
    assert "PRIVATE KEY" not in text
    for line in key_body_lines(pem):
        if len(line) >= 16:
            assert line not in text, "a line of the private key was printed"


def _truncate(pem: bytes) -> bytes:
    return pem[: len(pem) // 2]


def _corrupt(pem: bytes) -> bytes:
    lines = pem.split(b"\n")
    mid = len(lines) // 2
    lines[mid] = base64.b64encode(hashlib.sha512(lines[mid]).digest())[: len(lines[mid])]
    return b"\n".join(lines)


def _garbage(pem: bytes) -> bytes:
    return os.urandom(len(pem))


def _empty(pem: bytes) -> bytes:
    return b""


def _header_only(pem: bytes) -> bytes:
    return b"-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n"


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "truncated": _truncate, "corrupted": _corrupt, "garbage": _garbage, "empty": _empty,
    "header-only": _header_only,
}


def issue(config: Path) -> None:
    """One real issuance (the database holds absolute paths, so a state dir is never copied)."""
    r = run_cli(config, "renew", "--json")
    assert r.returncode == 0, r.stderr


def current(config: Path) -> dict[str, Any]:
    r = run_cli(config, "status", "--json")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    return dict(json.loads(r.stdout)[0])


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_current_key_is_refused(damage: str, pebble: Pebble, tmp_path: Path) -> None:
    """reuse_key (DANE pins) certifies the stored key again: a damaged one must stop it."""
    state = tmp_path / "state"
    config = write_config(tmp_path, pebble, state=state, reuse_key=True)
    issue(config)
    before = current(config)
    (key,) = state.glob(f"keys/{HOST}/*.pem")
    original = key.read_bytes()
    key.write_bytes(DAMAGE[damage](original))
    files, versions = state_digest(state), db_dump(state / "certmgr.db", ("cert_version", "acme_account"))

    r = run_cli(config, "renew", "--force", HOST, "--json")
    assert r.returncode == 1, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    assert "Traceback" not in r.stderr
    out = json.loads(r.stdout)
    assert [o["action"] for o in out] == ["failed"]
    assert str(key) in out[0]["message"] and "damaged" in out[0]["message"], out[0]["message"]
    assert_no_key_bytes(r.stdout + r.stderr, original)

    after = current(config)
    assert after["serial"] == before["serial"] and after["sha256"] == before["sha256"]
    assert str(key) in (after["last_error"] or "")
    assert state_digest(state) == files, "no file was added, removed or rewritten"
    assert db_dump(state / "certmgr.db", ("cert_version", "acme_account")) == versions
    assert not list(state.rglob("*.tmp"))


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_damaged_pending_key_after_crash_is_refused(damage: str, pebble: Pebble,
                                                    tmp_path: Path) -> None:
    """A run killed after the new key was recorded; the key is then damaged on disk."""
    state = tmp_path / "state"
    config = write_config(tmp_path, pebble, state=state)
    issue(config)
    crashed = run_cli(config, "renew", "--force", HOST, env={"CERTMGR_CRASH_AFTER": "key_ready"})
    assert crashed.returncode == -9, crashed.stderr
    # the killed process's lease runs out after LEASE_SECONDS; let it have run out already
    con = sqlite3.connect(state / "certmgr.db")
    with con:
        con.execute("UPDATE managed_cert SET lease_owner = NULL, lease_until = NULL")
    con.close()
    keys = sorted(state.glob(f"keys/{HOST}/*.pem"), key=lambda p: p.stat().st_mtime)
    pending = keys[-1]
    original = pending.read_bytes()
    pending.write_bytes(DAMAGE[damage](original))
    files, versions = state_digest(state), db_dump(state / "certmgr.db", ("cert_version",))

    r = run_cli(config, "renew", "--force", HOST, "--json")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    message = json.loads(r.stdout)[0]["message"]
    assert str(pending) in message and "damaged" in message, message
    assert_no_key_bytes(r.stdout + r.stderr, original)
    assert state_digest(state) == files
    assert db_dump(state / "certmgr.db", ("cert_version",)) == versions


def test_damaged_account_key_is_refused(pebble: Pebble, tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = write_config(tmp_path, pebble, state=state)
    issue(config)
    before = current(config)
    (account,) = state.glob("accounts/*.pem")
    original = account.read_bytes()
    account.write_bytes(_truncate(original))
    files, versions = state_digest(state), db_dump(state / "certmgr.db", ("cert_version", "acme_account"))

    r = run_cli(config, "renew", "--force", HOST, "--json")
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    message = json.loads(r.stdout)[0]["message"]
    assert "account key" in message and "damaged" in message, message
    assert_no_key_bytes(r.stdout + r.stderr, original)
    assert current(config)["serial"] == before["serial"]
    # the damaged file stays for a person to look at; new keys of the failed attempt aside
    assert {k: v for k, v in state_digest(state).items() if not k.startswith("keys/")} == \
        {k: v for k, v in files.items() if not k.startswith("keys/")}
    assert db_dump(state / "certmgr.db", ("cert_version", "acme_account")) == versions


def test_unreadable_database_is_clear_error(pebble: Pebble, tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = write_config(tmp_path, pebble, state=state)
    issue(config)
    db = state / "certmgr.db"
    for extra in state.glob("certmgr.db-*"):
        extra.unlink()
    db.write_bytes(b"this is not a database\n" * 200)
    files = state_digest(state)
    for args in (("status", "--json"), ("renew", "--force", HOST)):
        r = run_cli(config, *args)
        assert r.returncode == 2, f"{args}: exit {r.returncode}\n{r.stderr}"
        assert "Traceback" not in r.stderr and "database" in r.stderr and str(db) in r.stderr, r.stderr
    assert state_digest(state) == files
    assert db.read_bytes() == b"this is not a database\n" * 200


def test_locked_database_is_clear_error_and_readers_still_work(pebble: Pebble, tmp_path: Path) -> None:
    """Another program holds a write transaction open (an sqlite3 shell left inside BEGIN):
    `renew` waits the busy timeout, then says so and changes nothing; `status` still reads."""
    state = tmp_path / "state"
    config = write_config(tmp_path, pebble, state=state)
    issue(config)
    before = current(config)
    snap = snapshot(state)
    holder = sqlite3.connect(state / "certmgr.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("UPDATE event SET kind = kind WHERE id = -1")
        r = run_cli(config, "renew", "--force", HOST, env={"CERTMGR_DB_TIMEOUT": "1"})
        assert r.returncode == 2, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
        assert "Traceback" not in r.stderr and "database is locked" in r.stderr, r.stderr
        assert "more than 1 s" in r.stderr and "try again" in r.stderr, r.stderr
        assert str(state / "certmgr.db") in r.stderr, r.stderr
        print(f"\nLOCKED: {r.stderr.strip()}")
        seen = run_cli(config, "status", "--json", env={"CERTMGR_DB_TIMEOUT": "1"})
        assert seen.returncode == 0, seen.stderr
        assert json.loads(seen.stdout)[0]["serial"] == before["serial"]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert state_digest(state) == snap[0], "state files changed"
    assert state_fingerprint(state)["certmgr.db"] == snap[1], "database changed"
    r = run_cli(config, "renew", "--force", HOST)
    assert r.returncode == 0, r.stderr
    assert current(config)["serial"] != before["serial"]


# -- a full disk and a read-only state dir -----------------------------------------------


class Mounts:
    """Mounts made by one test, undone in reverse order afterwards."""

    def __init__(self) -> None:
        self.points: list[Path] = []

    def run(self, *args: str) -> None:
        r = subprocess.run(["mount", *args], capture_output=True, text=True)
        if r.returncode != 0:
            msg = f"mount {' '.join(args)} failed (root and mount permission are needed): {r.stderr}"
            if os.environ.get("CERTMGR_ALLOW_SKIP") == "1":
                pytest.skip(msg)
            pytest.fail(msg)

    def tmpfs(self, where: Path, size: str) -> None:
        where.mkdir(parents=True, exist_ok=True)
        self.run("-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where))
        self.points.append(where)

    def read_only(self, where: Path) -> None:
        self.run("--bind", str(where), str(where))
        self.points.append(where)
        self.run("-o", "remount,bind,ro", str(where))

    def undo(self) -> None:
        for p in reversed(self.points):
            subprocess.run(["umount", "-l", str(p)], capture_output=True)
        self.points.clear()


@pytest.fixture
def mounts() -> Iterator[Mounts]:
    m = Mounts()
    try:
        yield m
    finally:
        m.undo()


def fill_up(where: Path) -> None:
    """Write until the file system is full (unbuffered, so the last bytes really land)."""
    fd = os.open(where / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError:
                    break
    finally:
        os.close(fd)


def snapshot(state: Path) -> tuple[dict[str, str], str]:
    return state_digest(state), state_fingerprint(state)["certmgr.db"]


def assert_refused_cleanly(r: subprocess.CompletedProcess[str], state: Path, snap: tuple[dict[str, str], str],
                           phrase: str, ignore: tuple[str, ...] = ()) -> None:
    assert r.returncode != 0, r.stdout
    assert "Traceback" not in r.stderr, r.stderr
    text = r.stdout + r.stderr
    assert phrase in text.lower(), text
    files = {k: v for k, v in state_digest(state).items() if not k.startswith(ignore)}
    assert files == {k: v for k, v in snap[0].items() if not k.startswith(ignore)}, "state files changed"
    assert state_fingerprint(state)["certmgr.db"] == snap[1], "database changed"
    assert not [p for p in state.rglob("*") if p.name.endswith(".tmp")], "temp files left behind"


def test_disk_full_state_dir(pebble: Pebble, tmp_path: Path, mounts: Mounts) -> None:
    state = tmp_path / "state"
    mounts.tmpfs(state, "4m")
    config = write_config(tmp_path, pebble, state=state)
    issue(config)
    before = current(config)
    fill_up(state)
    snap = snapshot(state)
    r = run_cli(config, "renew", "--force", HOST)
    assert_refused_cleanly(r, state, snap, "disk", ignore=("filler",))
    (state / "filler").unlink()  # space again: the old certificate is still the current one
    assert current(config)["serial"] == before["serial"]


def test_read_only_state_dir(pebble: Pebble, tmp_path: Path, mounts: Mounts) -> None:
    state = tmp_path / "state"
    config = write_config(tmp_path, pebble, state=state)
    issue(config)
    before = current(config)
    mounts.read_only(state)
    snap = snapshot(state)
    r = run_cli(config, "renew", "--force", HOST)
    assert_refused_cleanly(r, state, snap, "read-only")
    mounts.undo()
    assert current(config)["serial"] == before["serial"]


READ_ONLY_COMMANDS = (("status", "--json"), ("check", "--json"), ("metrics",), ("calendar",), ("providers",),
                      ("validate",), ("remind", "--dry-run"))


@pytest.mark.parametrize("how", ["disk-full", "read-only"])
def test_read_only_commands_work_without_a_writable_state_dir(how: str, pebble: Pebble, tmp_path: Path,
                                                              mounts: Mounts) -> None:
    """`status`, `check`, `metrics`, `calendar`, `providers`, `validate` and `remind --dry-run` only read:
    a full disk or a read-only state dir must not stop them (the probe result is not stored, and
    `check` says so)."""
    state = tmp_path / "state"
    if how == "disk-full":
        mounts.tmpfs(state, "4m")
    config = write_config(tmp_path, pebble, state=state)
    # nothing listens on port 1: the probe is refused at once (UNKNOWN, or WARNING when the name
    # does not resolve here; never CRITICAL, whose exit 2 the disk error used to take)
    config.write_text(config.read_text() + 'smtp = "127.0.0.1:1"\n')
    issue(config)
    before = current(config)
    if how == "disk-full":
        fill_up(state)
    else:
        mounts.read_only(state)
    snap = snapshot(state)
    for args in READ_ONLY_COMMANDS:
        r = run_cli(config, *args)
        assert r.returncode in ((1, 3) if args[0] == "check" else (0,)), f"{args}: exit {r.returncode}\n{r.stderr}"
        assert "Traceback" not in r.stderr and "disk I/O error" not in r.stderr, r.stderr
        if args[0] == "status":
            assert json.loads(r.stdout)[0]["serial"] == before["serial"]
        if args[0] == "check":
            assert json.loads(r.stdout)[0]["status"] in ("unknown", "warning")
            assert "not stored" in r.stderr, r.stderr
        if args[0] == "metrics":
            assert "certmgr_certificate_" in r.stdout, r.stdout
    files = {k: v for k, v in state_digest(state).items() if k != "filler"}
    assert files == {k: v for k, v in snap[0].items() if k != "filler"}, "state files changed"
    assert state_fingerprint(state)["certmgr.db"] == snap[1], "database changed"


# -- a deleted database ------------------------------------------------------------------


def test_deleted_database_is_refused_until_recovered(pebble: Pebble, tmp_path: Path) -> None:
    """With keys and certificates in the state dir but an empty database, writing commands refuse
    (they would order everything again with new keys); `recover` rebuilds the inventory."""
    state = tmp_path / "state"
    config = write_config(tmp_path, pebble, state=state)
    issue(config)
    r = run_cli(config, "renew", "--force", HOST)  # a second version: history to rebuild
    assert r.returncode == 0, r.stderr
    before = current(config)
    keys = {p.name: p.read_bytes() for p in state.glob(f"keys/{HOST}/*.pem")}
    certs = sorted(p.name for p in state.glob(f"certs/{HOST}/rsa/*"))
    assert len(keys) == 2 and len(certs) == 2
    for p in state.glob("certmgr.db*"):
        p.unlink()
    seen = run_cli(config, "status", "--json")  # reads the empty inventory, writes none, says what to do
    assert seen.returncode == 0 and json.loads(seen.stdout)[0]["serial"] is None, seen.stderr
    assert "certmgr recover" in seen.stderr, seen.stderr

    for args in (("renew",), ("renew", "--force", HOST), ("deploy",), ("remind",)):
        r = run_cli(config, *args)
        assert r.returncode == 2, f"{args}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
        assert "certmgr recover" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert sorted(p.name for p in state.glob(f"certs/{HOST}/rsa/*")) == certs, "nothing ordered"

    r = run_cli(config, "recover", "--json")
    assert r.returncode == 0, r.stderr
    (done,) = json.loads(r.stdout)
    assert done["versions_added"] == 2 and done["current_serial"] == before["serial"], done
    again = run_cli(config, "recover", "--json")  # idempotent
    assert json.loads(again.stdout)[0]["versions_added"] == 0, again.stdout

    after = current(config)
    assert (after["serial"], after["sha256"], after["not_after"]) == \
        (before["serial"], before["sha256"], before["not_after"])
    r = run_cli(config, "renew", "--json")
    assert r.returncode == 0, r.stderr
    assert [o["action"] for o in json.loads(r.stdout)] == ["not-due"], r.stdout
    assert current(config)["serial"] == before["serial"]
    assert {p.name: p.read_bytes() for p in state.glob(f"keys/{HOST}/*.pem")} == keys, "keys changed"
    assert sorted(p.name for p in state.glob(f"certs/{HOST}/rsa/*")) == certs
    con = sqlite3.connect(f"file:{state / 'certmgr.db'}?mode=ro", uri=True)
    try:
        assert con.execute("SELECT count(*) FROM cert_version").fetchone()[0] == 2
    finally:
        con.close()


def test_recover_after_restoring_an_old_backup_makes_the_newest_certificate_current(
        pebble: Pebble, tmp_path: Path) -> None:
    """A database restored from before the last renewal points at the older certificate, while the
    MTAs serve the newer one: `recover` records the newer one and makes it current again."""
    state = tmp_path / "state"
    config = write_config(tmp_path, pebble, state=state)
    issue(config)
    backup = tmp_path / "backup.db"
    with sqlite3.connect(f"file:{state / 'certmgr.db'}?mode=ro", uri=True) as src, sqlite3.connect(backup) as dst:
        src.backup(dst)
    r = run_cli(config, "renew", "--force", HOST)
    assert r.returncode == 0, r.stderr
    newest = current(config)["serial"]
    for p in state.glob("certmgr.db*"):
        p.unlink()
    shutil.copy(backup, state / "certmgr.db")
    assert current(config)["serial"] != newest  # the backup's current certificate

    r = run_cli(config, "recover", "--json")
    assert r.returncode == 0, r.stderr
    (done,) = json.loads(r.stdout)
    assert (done["versions_added"], done["current_serial"]) == (1, newest), done
    assert current(config)["serial"] == newest
