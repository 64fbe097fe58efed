"""The one mail-deployer path: write files atomically, test the config, reload, undo on failure.

Each MTA module says only its file layout, its config test and its reload
command (:class:`MailDeployer` subclasses); everything else lives here once:

1. the previous version of every file is copied next to it (``<file>.certmgr-prev``,
   0600) so a rollback works even after a restart, and its mode and owner are noted; an
   in-flight marker (``<file>.certmgr-inflight``) stays beside each file until the
   deployment is verified (:meth:`MailDeployer.commit`) or undone, so a deployment cut
   short (a crash, SIGKILL) and run again keeps the backup of the file from before it;
2. the new files are written atomically (temp in the same dir, fsync, rename),
   key material 0600 (0640 with a configured ``group``), never through a symlink;
3. optional config edits, then the MTA's config test, then its reload;
4. on any failure the previous files are put back byte for byte with their mode and
   owner, the files that are new are removed last (once no restored config names them),
   the restored config is checked to name no missing file (:meth:`referenced_files`),
   the MTA is reloaded again and :class:`DeployError` says what failed and that the old
   files are back.

A request with several hostnames (``DeployRequest.hosts``: one MTA instance, SNI) is
one unit: a deployer that can serve it says so in :meth:`several_hostnames`, writes
every hostname's files in :meth:`layout`, and is verified per hostname with SNI and
per endpoint without SNI (the primary's certificate).

Verification (probing the MTA after the reload) is the core's job
(``certmgr.deploy.verify``); it calls :meth:`MailDeployer.rollback` when the new
certificate is not served.  Common options of every deployer: ``host``
(``ssh://user@host[:port]``, default this machine), ``ssh_identity``,
``ssh_known_hosts``, ``group``.
"""

from __future__ import annotations

import grp
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from certmgr.errors import ConfigError, DeployError
from certmgr.interfaces import DeployRequest, Installed, Options, VerifyTarget
from providers.deployers.hosts import FileMeta, Host, make_host
from providers.deployers.setup import SetupChecks

BACKUP_SUFFIX = ".certmgr-prev"
#: beside a file an unfinished deployment wrote: its backup is the file to put back
INFLIGHT_SUFFIX = ".certmgr-inflight"


@dataclass(frozen=True)
class FileSpec:
    path: str
    data: bytes
    #: holds a private key: 0600 (0640 with a group), never through a symlink
    secret: bool


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    stdin: bytes | None = None

    def show(self) -> str:
        return " ".join(self.argv)


@dataclass(frozen=True)
class HostOptions:
    host: Host
    group: str | None


#: deployer keys that name files or directories on the MTA host
_PATH_KEYS = ("config_dir", "cert_dir", "config_file", "dovecot_config")


def read_host_options(options: Options) -> HostOptions:
    """The options every deployer shares (call before ``options.finish()``)."""
    identity = options.path("ssh_identity", None)
    known_hosts = options.path("ssh_known_hosts", None)
    host = make_host(options.str("host", None), ssh_identity=identity, ssh_known_hosts=known_hosts)
    for key in _PATH_KEYS:
        # paths on the MTA host: a relative one would be taken from whatever directory certmgr runs in
        value = options.peek(key)
        if isinstance(value, str) and value and not re.match(r"^(/|[A-Za-z]:[\\/])", value):
            raise ConfigError(f"must be an absolute path on the MTA host, got {value!r}", table=options.where,
                              key=key)
    group = options.str("group", None)
    if group is not None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}", group):
            raise ConfigError(f"{group!r} is not a group name", table=options.where, key="group")
        if host.label == "local":
            # found now, not when the first key is written
            try:
                grp.getgrnam(group)
            except KeyError:
                raise ConfigError(f"group {group!r} does not exist on this machine; create it or remove `group`",
                                  table=options.where, key="group") from None
    return HostOptions(host=host, group=group)


class MailDeployer(SetupChecks, ABC):
    """Base of every file-based deployer.  Subclasses fill in the hooks below."""

    #: the MTA's name in messages ("postfix", "exim", ...)
    kind = "mail"

    def __init__(self, name: str, hosting: HostOptions) -> None:
        self.name = name
        self.host = hosting.host
        self.group = hosting.group

    # ---- hooks -----------------------------------------------------------
    @abstractmethod
    def where(self) -> str:
        """What is deployed to, for messages and ``Installed.target``."""

    @abstractmethod
    def layout(self, request: DeployRequest) -> list[FileSpec]:
        """The files to write for ``request`` (their previous versions are backed up)."""

    def preflight(self, request: DeployRequest) -> None:
        """Raise DeployError when ``request`` cannot work here; runs before anything is changed."""
        return None

    def extra_backups(self, request: DeployRequest) -> list[str]:
        """Files changed by :meth:`configure` (backed up and restored with the rest)."""
        return []

    def configure(self, request: DeployRequest) -> list[Command]:
        """Config edits run after the files are written (e.g. ``postconf -e``)."""
        return []

    def check(self) -> Command | None:
        """The MTA's config test, or None when it has none."""
        return None

    @abstractmethod
    def reload(self, paths: Sequence[str]) -> list[Command]:
        """How the MTA picks up the files at ``paths`` (also used after a restore)."""

    def verify_targets(self, request: DeployRequest) -> tuple[VerifyTarget, ...]:
        return (request.verify,)

    # ---- the shared path -------------------------------------------------
    @property
    def target(self) -> str:
        where = self.where()
        return where if self.host.label == "local" else f"{where} on {self.host.label}"

    def silent_failure(self, command: Command) -> str:
        """What explains a failed ``command`` that printed nothing (its output is shown otherwise)."""
        return "it printed nothing"

    def _run(self, command: Command, what: str) -> None:
        result = self.host.run(command.argv, env=command.env, stdin=command.stdin)
        if result.returncode != 0:
            detail = result.output or f"({self.silent_failure(command)})"
            raise DeployError(f"{what} `{command.show()}` failed with exit code {result.returncode}: {detail}")

    def _backup(self, paths: Sequence[str]) -> tuple[dict[str, str | None], dict[str, FileMeta]]:
        """Copy each existing file to ``<file>.certmgr-prev``; note its mode and owner.

        A file with an in-flight marker (``<file>.certmgr-inflight``) holds what an interrupted
        deployment wrote and never verified: its backup is kept, not overwritten, so a rollback
        still puts back the last file that was in place before it."""
        saved: dict[str, str | None] = {}
        meta: dict[str, FileMeta] = {}
        for path in paths:
            interrupted = self._inflight(path)
            if interrupted is not None:
                saved[path], found = interrupted
                if found is not None:
                    meta[path] = found
                continue
            old = self.host.read(path)
            if old is None:
                saved[path] = None
                continue
            found = self.host.stat(path)
            if found is not None:
                meta[path] = found
            # the backup of a key file is as private as the key itself
            self.host.write(path + BACKUP_SUFFIX, old, mode=self._mode(secret=True), group=self.group)
            saved[path] = path + BACKUP_SUFFIX
        for path, backup in saved.items():
            found = meta.get(path)
            marker = {"backup": backup is not None,
                      "meta": [found.mode, found.uid, found.gid] if found is not None else None}
            self.host.write(path + INFLIGHT_SUFFIX, json.dumps(marker).encode(), mode=0o600)
        return saved, meta

    def _inflight(self, path: str) -> tuple[str | None, FileMeta | None] | None:
        """What the in-flight marker of ``path`` says was there before an interrupted deployment
        (its backup, or None: no file; and its mode and owner); None when there is no marker or
        its backup is gone (then the file in place is all there is)."""
        data = self.host.read(path + INFLIGHT_SUFFIX)
        if data is None:
            return None
        try:
            marker = json.loads(data)
            had = bool(marker["backup"])
            found = FileMeta(*marker["meta"]) if marker.get("meta") else None
        except (ValueError, KeyError, TypeError):
            return None
        if not had:
            return None, None
        if self.host.read(path + BACKUP_SUFFIX) is None:
            return None
        return path + BACKUP_SUFFIX, found

    def _settled(self, paths: Iterable[str]) -> None:
        """The deployment of ``paths`` is verified or undone: drop their in-flight markers."""
        for path in paths:
            self.host.remove(path + INFLIGHT_SUFFIX)

    def commit(self, installed: Installed) -> None:
        """The new files are verified as served: they are the files to keep from now on."""
        self._settled(installed.backup.get("files", {}))

    def _restore(self, saved: Mapping[str, str | None], secret: Mapping[str, bool],
                 meta: Mapping[str, FileMeta]) -> None:
        """Every file byte for byte with its mode and owner; the files that are new go last,
        once no restored configuration names them any more."""
        for path, backup in saved.items():
            if backup is None:
                continue
            data = self.host.read(backup)
            if data is None:
                raise DeployError(f"the backup {backup} is missing; restore {path} by hand")
            self.host.write(path, data, mode=self._mode(secret=secret.get(path, True)), group=self.group,
                            owner=meta.get(path))
        for path, backup in saved.items():
            if backup is None:
                self.host.remove(path)
        self._settled(saved)

    def _keep_owner(self, paths: Sequence[str], meta: Mapping[str, FileMeta]) -> None:
        """Give files the config edits rewrote their mode and owner back (``postconf -e``
        writes a new main.cf, root:root 0644 whatever it was)."""
        for path in paths:
            before = meta.get(path)
            if before is None or self.host.stat(path) in (None, before):
                continue
            data = self.host.read(path)
            if data is not None:
                self.host.write(path, data, mode=before.mode, owner=before)

    def referenced_files(self) -> list[str]:
        """The certificate files the MTA's configuration names now (checked after a restore)."""
        return []

    def _dangling(self) -> str | None:
        missing = [p for p in self.referenced_files() if self.host.stat(p) is None]
        if not missing:
            return None
        return f"the {self.kind} configuration names {', '.join(missing)}, which does not exist"

    def _mode(self, *, secret: bool) -> int:
        if not secret:
            return 0o644
        return 0o640 if self.group else 0o600

    def _reload(self, paths: Sequence[str]) -> None:
        for command in self.reload(paths):
            self._run(command, f"{self.kind} reload")

    def several_hostnames(self) -> str | None:
        """None when this target can serve several hostnames by SNI (see ``SeveralHostnames``)."""
        return f"the {self.kind} deployer cannot choose a certificate by SNI"

    def instance(self) -> tuple[str, str] | None:
        """Which MTA instance this target reloads (see ``MtaInstance``); None: unknown."""
        return None

    def _verify_plan(self, request: DeployRequest) -> tuple[VerifyTarget, ...]:
        """Every hostname with its SNI name, and every endpoint without SNI (the default)."""
        if not request.hosts:
            return self.verify_targets(request)
        subs = [DeployRequest(h.hostname, h.bundles, h.verify) for h in request.hosts]
        plan = [replace(t, servername=sub.hostname) for sub in subs for t in self.verify_targets(sub)]
        plan += [replace(t, servername="") for sub in subs for t in self.verify_targets(sub)]
        return tuple(dict.fromkeys(plan))

    def install(self, request: DeployRequest) -> Installed:
        if request.hosts and (why := self.several_hostnames()):
            raise DeployError(f"{self.target}: cannot serve {', '.join(h.hostname for h in request.hosts)} "
                              f"from one instance, so nothing was changed: {why}")
        try:
            self.preflight(request)
            files = self.layout(request)
            extra = self.extra_backups(request)
        except DeployError as e:
            raise DeployError(f"{self.target}: {e}; nothing was changed") from e
        backup = self.install_files(files, extra_backups=extra, configure=self.configure(request),
                                    what=", ".join(h.hostname for h in request.all_hosts),
                                    backup_what=request.hostname)
        return Installed(target=self.target, verify=self._verify_plan(request), backup=backup)

    def install_files(self, files: Sequence[FileSpec], *, extra_backups: Sequence[str],
                      configure: Sequence[Command], what: str, backup_what: str | None = None) -> dict[str, Any]:
        """Back up, write ``files``, run ``configure``, test, reload; undo it all on failure.
        Returns what :meth:`rollback` needs (``Installed.backup``)."""
        paths = [f.path for f in files]
        secret = {f.path: f.secret for f in files}
        try:
            saved, meta = self._backup([*paths, *extra_backups])
        except DeployError as e:
            raise DeployError(f"{self.target}: cannot back up the current files before deploying "
                              f"{backup_what or what}, so nothing was changed: {e}") from e
        try:
            for f in files:
                self.host.write(f.path, f.data, mode=self._mode(secret=f.secret), group=self.group)
            for command in configure:
                self._run(command, f"{self.kind} configuration")
            self._keep_owner(extra_backups, meta)
            check = self.check()
            if check is not None:
                self._run(check, f"{self.kind} config test")
            self._reload(paths)
        except DeployError as e:
            restored = self._undo(saved, secret, meta, paths)
            raise DeployError(f"{self.target}: deploying {what} failed: {e}; {restored}") from e
        return {"files": saved, "secret": secret, "paths": paths, "meta": meta}

    def _undo(self, saved: Mapping[str, str | None], secret: Mapping[str, bool], meta: Mapping[str, FileMeta],
              paths: Sequence[str]) -> str:
        try:
            self._restore(saved, secret, meta)
            dangling = self._dangling()
        except DeployError as e:
            return f"restoring the previous files ALSO failed ({e}): fix {self.target} by hand"
        if dangling:
            return f"the previous files are back, but {dangling}: fix {self.target} by hand"
        try:
            self._reload(paths)
        except DeployError as e:
            return f"the previous files are back but the reload after restoring them failed too ({e})"
        return "the previous files are back in place and reloaded"

    def rollback(self, installed: Installed) -> None:
        backup: Mapping[str, Any] = installed.backup
        saved: Mapping[str, str | None] = backup.get("files", {})
        secret: Mapping[str, bool] = backup.get("secret", {})
        meta: Mapping[str, FileMeta] = backup.get("meta", {})
        paths: Sequence[str] = backup.get("paths", list(saved))
        try:
            self._restore(saved, secret, meta)
            dangling = self._dangling()
            if dangling:
                raise DeployError(dangling)
            self._reload(paths)
        except DeployError as e:
            raise DeployError(f"{self.target}: rolling back failed: {e}") from e


def cert_path(cert_dir: str | Path, hostname: str, alg: str, suffix: str) -> str:
    """``<cert_dir>/<hostname>.<alg>.<suffix>``: one name per algorithm so dual keys coexist."""
    return str(Path(cert_dir) / f"{hostname}.{alg}.{suffix}")


def split_bundles(request: DeployRequest) -> None:
    """Refuse two bundles of one algorithm: each algorithm has one slot in the MTA."""
    for host in request.all_hosts:
        algs = [b.key_alg for b in host.bundles]
        if not algs:
            raise DeployError(f"nothing to deploy for {host.hostname}: no certificate given")
        if len(set(algs)) != len(algs):
            raise DeployError(f"{host.hostname}: two certificates for the same key algorithm ({algs})")
    names = [h.hostname for h in request.all_hosts]
    if len(set(names)) != len(names):
        raise DeployError(f"a hostname is given twice: {names}")


def cert_and_key_files(cert_dir: str, request: DeployRequest) -> list[FileSpec]:
    """The usual layout: ``<host>.<alg>.crt`` (leaf + chain, 0644) and ``<host>.<alg>.key`` (secret),
    for every hostname of the request (primary first)."""
    split_bundles(request)
    files: list[FileSpec] = []
    for host in request.all_hosts:
        for b in host.bundles:
            files.append(FileSpec(cert_path(cert_dir, host.hostname, b.key_alg, "crt"), b.fullchain_pem, False))
            files.append(FileSpec(cert_path(cert_dir, host.hostname, b.key_alg, "key"), b.key_pem, True))
    return files


def parse_target(value: str, *, protocol: str, implicit_tls: bool, key: str) -> VerifyTarget:
    """``host:port`` from a deployer option."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"must be host:port, got {value!r}", key=key)
    return VerifyTarget(host.strip("[]"), int(port), protocol, implicit_tls)
