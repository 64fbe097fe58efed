"""Files written so that a crash never leaves a half-written or world-readable one.

Write to a temporary file in the same directory, fsync it, rename it over the
target, fsync the directory.  Private material is created 0600 from the start
(never chmod-ed after the bytes are there).
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

from certmgr.errors import StateError


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) as 0700 directories; tighten an existing one."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.is_symlink():
            raise StateError(f"{path} is a symbolic link; certmgr keeps its state in real directories")
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o700)
    except OSError as e:
        raise StateError(f"cannot create state directory {path}: {e.strerror}; check the path and permissions") from e
    return path


#: what certmgr itself keeps at the top of its state directory
STATE_ENTRIES = frozenset({"certmgr.db", "certmgr.db-wal", "certmgr.db-shm", "certmgr.db-journal",
                           "keys", "certs", "accounts", "daemon.lock"})


def ensure_state_root(path: Path) -> Path:
    """Create the state directory 0700, or check that an existing one is certmgr's and safe.

    An existing directory is never changed (no chmod): one that is a symbolic link, owned
    by another user, writable by group or others, or full of files that are not certmgr's
    is refused with what to do, since it may be somebody else's directory.
    """
    try:
        if not path.exists() and not path.is_symlink():
            path.mkdir(mode=0o700, parents=True)
            return path
        st = path.lstat()
    except OSError as e:
        raise StateError(f"cannot create state directory {path}: {e.strerror}; check the path and permissions") from e
    fix = "fix it, or set [certmgr] state_dir to a directory of certmgr's own (a new path is created 0700)"
    if stat.S_ISLNK(st.st_mode):
        raise StateError(f"state directory {path} is a symbolic link; certmgr keeps its state in a real "
                         f"directory: {fix}")
    if not stat.S_ISDIR(st.st_mode):
        raise StateError(f"state directory {path} exists and is not a directory: {fix}")
    euid = os.geteuid()
    if st.st_uid != euid and euid != 0:
        raise StateError(f"state directory {path} belongs to uid {st.st_uid}, not to this user (uid {euid}); "
                         f"run certmgr as its owner or {fix}")
    if st.st_mode & 0o022:
        raise StateError(f"state directory {path} is writable by group or others (mode "
                         f"{stat.S_IMODE(st.st_mode):04o}); certmgr does not change an existing directory: "
                         f"`chmod 700 {path}` if it is certmgr's, or {fix}")
    try:
        entries = {p.name for p in path.iterdir()}
    except OSError as e:
        raise StateError(f"cannot read state directory {path}: {e.strerror}; check the permissions") from e
    if entries and not entries & STATE_ENTRIES:
        shown = ", ".join(sorted(entries)[:5]) + (", …" if len(entries) > 5 else "")
        raise StateError(f"state directory {path} already holds files that are not certmgr's ({shown}); "
                         f"{fix}")
    return path


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` atomically with ``mode``; never through a symlink."""
    atomic_write_many(path.parent, {path.name: data}, mode)


def atomic_write_many(directory: Path, files: Mapping[str, bytes], mode: int = 0o600) -> None:
    """Write each of ``files`` (name -> data) into ``directory`` atomically with ``mode``, never
    through a symlink; the directory is synced once, after the last (a certificate's three files
    cost four syncs, not six)."""
    name = ""
    for name, data in files.items():
        _replace_synced(directory / name, data, mode)
    try:
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as e:
        raise StateError(f"could not write {directory / name}: {_why(e)}; nothing was changed") from e


def _replace_synced(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to a temporary file beside ``path``, sync it and rename it over ``path``."""
    if path.is_symlink():
        raise StateError(f"refusing to write {path}: it is a symbolic link (possible tampering)")
    fd = -1
    tmp = ""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
        tmp = ""
    except OSError as e:
        raise StateError(f"could not write {path}: {_why(e)}; nothing was changed") from e
    finally:
        if fd >= 0:
            os.close(fd)
        if tmp:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _why(e: OSError) -> str:
    return {
        errno.ENOSPC: "the disk is full; free space and run again",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied; run as the certmgr user or fix ownership",
        errno.EDQUOT: "the disk quota is exceeded",
    }.get(e.errno or 0, e.strerror or str(e))


def write_new(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Like :func:`atomic_write` but refuse to replace an existing file (history is never overwritten)."""
    write_new_many(path.parent, {path.name: data}, mode)


def write_new_many(directory: Path, files: Mapping[str, bytes], mode: int = 0o600) -> None:
    """Like :func:`atomic_write_many` but refuse to replace an existing file."""
    for name in files:
        path = directory / name
        if path.exists() or path.is_symlink():
            raise StateError(f"{path} exists already; certmgr never overwrites stored keys or certificates")
    atomic_write_many(directory, files, mode)
