"""Where a deployer works: this machine, or another one over SSH.

Both hosts offer the same few operations (run an argument list, read a file,
stat one, write one atomically, optionally with a given mode and owner, remove
one).  Locally nothing goes through a shell.  Over SSH the remote side always
runs a shell, so every argument is quoted with :func:`shlex.quote`; the OpenSSH client runs with ``BatchMode=yes`` (key
authentication only, never a password prompt) and ``StrictHostKeyChecking=yes``
against the configured ``known_hosts`` file.
"""

from __future__ import annotations

import contextlib
import grp
import os
import shlex
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from certmgr.errors import ConfigError, DeployError


@dataclass(frozen=True)
class Completed:
    returncode: int
    output: str  # stdout and stderr, for error messages (the tail of a long one)
    #: the whole standard output, for commands whose answer is read (postconf -x, exim -bP)
    stdout: str = ""


@dataclass(frozen=True)
class FileMeta:
    """A file's permission bits and owner, put back with its bytes on a rollback."""

    mode: int
    uid: int
    gid: int


class Host(Protocol):
    label: str  # "local" or "ssh://user@host:port"

    @property
    def privileged(self) -> bool:
        """Commands run as root there (so those reserved to root, like ``postfix check``, work)."""
        ...

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
            stdin: bytes | None = None, timeout: float = 120.0) -> Completed: ...

    def read(self, path: str) -> bytes | None:
        """The file's bytes, or None when it does not exist."""
        ...

    def stat(self, path: str) -> FileMeta | None:
        """Mode and owner of ``path``, or None when it does not exist."""
        ...

    def write(self, path: str, data: bytes, *, mode: int, group: str | None = None,
              owner: FileMeta | None = None) -> None:
        """Temp file in the same dir, fsync, rename; refuses to replace a symlink.
        ``owner``: give the file this mode, uid and gid instead (a restore; as root, or as
        far as the user may)."""
        ...

    def remove(self, path: str) -> None: ...


def _tail(text: str, limit: int = 600) -> str:
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-limit:]


class LocalHost:
    label = "local"

    @property
    def privileged(self) -> bool:
        return os.geteuid() == 0

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
            stdin: bytes | None = None, timeout: float = 120.0) -> Completed:
        full_env = {**os.environ, **env} if env else None
        try:
            proc = subprocess.run(list(argv), input=stdin, env=full_env, capture_output=True, timeout=timeout)
        except FileNotFoundError:
            return Completed(127, f"{argv[0]}: command not found")
        except subprocess.TimeoutExpired:
            return Completed(124, f"{argv[0]} did not finish within {timeout:.0f}s")
        out = (proc.stdout + proc.stderr).decode("utf-8", "replace")
        return Completed(proc.returncode, _tail(out), proc.stdout.decode("utf-8", "replace"))

    def read(self, path: str) -> bytes | None:
        try:
            return Path(path).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise DeployError(f"cannot read {path}: {e.strerror}") from e

    def stat(self, path: str) -> FileMeta | None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise DeployError(f"cannot stat {path}: {e.strerror}") from e
        return FileMeta(st.st_mode & 0o7777, st.st_uid, st.st_gid)

    def write(self, path: str, data: bytes, *, mode: int, group: str | None = None,
              owner: FileMeta | None = None) -> None:
        target = Path(path)
        if target.is_symlink():
            raise DeployError(f"refusing to write {path}: it is a symbolic link (remove it and retry)")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
            try:
                # before any byte is written: a key is never readable by others
                os.fchmod(fd, mode if owner is None else owner.mode & 0o700)
                if owner is not None:
                    _give_owner(fd, owner)
                    os.fchmod(fd, owner.mode)  # after chown, which clears set-id bits
                elif group is not None:
                    os.fchown(fd, -1, grp.getgrnam(group).gr_gid)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            dir_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except KeyError as e:
            raise DeployError(f"cannot write {path}: group {group!r} does not exist") from e
        except OSError as e:
            raise DeployError(f"cannot write {path}: {e.strerror}") from e

    def remove(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _give_owner(fd: int, owner: FileMeta) -> None:
    """The previous owner and group; a certmgr that is not root may only keep what it can
    (its own files, or a group it belongs to): the mode is put back in any case."""
    try:
        os.fchown(fd, owner.uid, owner.gid)
    except PermissionError:
        with contextlib.suppress(PermissionError):
            os.fchown(fd, -1, owner.gid)


class SshHost:
    """Runs everything on ``user@host`` through the OpenSSH client."""

    def __init__(self, user: str, host: str, port: int, *, identity: Path | None, known_hosts: Path,
                 ssh_binary: str = "ssh") -> None:
        self.user, self.host, self.port = user, host, port
        self.label = f"ssh://{user}@{host}:{port}"
        self._ssh = [ssh_binary, "-p", str(port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                     "-o", f"UserKnownHostsFile={known_hosts}", "-o", "ConnectTimeout=15"]
        if identity is not None:
            self._ssh += ["-i", str(identity), "-o", "IdentitiesOnly=yes"]
        self._ssh += ["-l", user, "--", host]

    @property
    def privileged(self) -> bool:
        return self.user == "root"

    def shell(self, script: str, *, stdin: bytes | None = None, timeout: float = 120.0) -> Completed:
        try:
            proc = subprocess.run([*self._ssh, script], input=stdin, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return Completed(124, f"ssh to {self.label} did not finish within {timeout:.0f}s")
        out = (proc.stdout + proc.stderr).decode("utf-8", "replace")
        if proc.returncode == 255:
            raise DeployError(f"cannot reach {self.label} over ssh: {_tail(out)} "
                              "(check the key, known_hosts and that sshd runs)")
        return Completed(proc.returncode, _tail(out), proc.stdout.decode("utf-8", "replace"))

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
            stdin: bytes | None = None, timeout: float = 120.0) -> Completed:
        prefix = ["env", *(f"{k}={v}" for k, v in (env or {}).items())] if env else []
        return self.shell(shlex.join([*prefix, *argv]), stdin=stdin, timeout=timeout)

    def read(self, path: str) -> bytes | None:
        q = shlex.quote(path)
        try:
            proc = subprocess.run([*self._ssh, f"if [ -e {q} ]; then cat -- {q}; else exit 3; fi"],
                                  capture_output=True, timeout=120)
        except subprocess.TimeoutExpired as e:
            raise DeployError(f"reading {path} on {self.label} timed out") from e
        if proc.returncode == 3:
            return None
        if proc.returncode != 0:
            reason = _tail(proc.stderr.decode(errors="replace"))
            raise DeployError(f"cannot read {path} on {self.label}: {reason}")
        return proc.stdout

    def stat(self, path: str) -> FileMeta | None:
        q = shlex.quote(path)
        result = self.shell(f"if [ -e {q} ]; then stat -c '%a %u %g' -- {q}; else exit 3; fi")
        if result.returncode == 3:
            return None
        fields = result.output.split()
        if result.returncode != 0 or len(fields) != 3:
            raise DeployError(f"cannot stat {path} on {self.label}: {result.output}")
        return FileMeta(int(fields[0], 8), int(fields[1]), int(fields[2]))

    def write(self, path: str, data: bytes, *, mode: int, group: str | None = None,
              owner: FileMeta | None = None) -> None:
        q = shlex.quote(path)
        parent = shlex.quote(os.path.dirname(path) or ".")
        chgrp = f'chgrp {shlex.quote(group)} "$t" && ' if group else ""
        if owner is not None:  # a restore: the previous owner (as far as this user may) and mode
            chgrp = (f'{{ chown {owner.uid}:{owner.gid} "$t" 2>/dev/null || chgrp {owner.gid} "$t" 2>/dev/null '
                     '|| true; } && ')
            mode = owner.mode
        # umask 077 first: the temp file is private from its first byte.
        script = (
            f"umask 077; if [ -L {q} ]; then echo 'is a symbolic link' >&2; exit 3; fi; "
            f"mkdir -p {parent} && t=$(mktemp {parent}/.certmgr.XXXXXX) || exit 1; "
            f'if cat > "$t" && {chgrp}chmod {mode:o} "$t" && sync "$t" && mv -f "$t" {q}; '
            f'then sync {parent}; else rm -f "$t"; exit 1; fi'
        )
        result = self.shell(script, stdin=data)
        if result.returncode == 3:
            raise DeployError(f"refusing to write {path} on {self.label}: it is a symbolic link")
        if result.returncode != 0:
            raise DeployError(f"cannot write {path} on {self.label}: {result.output}")

    def remove(self, path: str) -> None:
        result = self.shell(f"rm -f -- {shlex.quote(path)}")
        if result.returncode != 0:
            raise DeployError(f"cannot remove {path} on {self.label}: {result.output}")


def make_host(value: str | None, *, ssh_identity: Path | None,
                      ssh_known_hosts: Path | None) -> Host:
    """``host = "ssh://user@host[:port]"`` -> SshHost; absent -> LocalHost."""
    if value is None:
        return LocalHost()
    parts = urlsplit(value)
    if parts.scheme != "ssh" or not parts.hostname or parts.path not in ("", "/"):
        raise ConfigError(f"must look like ssh://user@host[:port], got {value!r}", key="host")
    if ssh_known_hosts is None:
        raise ConfigError("is required with an ssh:// host (the remote host key must be known)",
                          key="ssh_known_hosts")
    try:
        port = parts.port or 22
    except ValueError as e:
        raise ConfigError(f"bad port in {value!r}", key="host") from e
    return SshHost(parts.username or "root", parts.hostname, port, identity=ssh_identity,
                   known_hosts=ssh_known_hosts)
