"""Postfix: one file per key algorithm with key, certificate and chain together.

Needs: the ``postfix`` and ``postconf`` commands on the MTA host (local or
``host = "ssh://…"``).  Options: ``config_dir`` (required), ``cert_dir``
(default ``<config_dir>/certmgr``), ``manage_config`` (default false: when true,
``smtpd_tls_chain_files`` is set with ``postconf -c <config_dir> -e``; otherwise
main.cf must already point at the files: one that names other files is said before anything
is changed), ``reload_command`` (default
``postfix -c <config_dir> reload``), ``group``, plus the shared host options.

Partner TLS policy: ``tls_policy_map`` (default ``<cert_dir>/tls_policy``) is written
with one line per enforced partner, indexed with ``postmap`` using the MTA's
``default_database_type``, and (with ``manage_config``) named in
``smtp_tls_policy_maps``; then the same check, reload and undo as certificates.

Files: ``<cert_dir>/<hostname>.<rsa|ecdsa>.pem``, each holding key, leaf and
chain, for ``smtpd_tls_chain_files``: key and certificate change in one rename,
so a reload never sees a mismatched pair.  Config test: ``postfix -c <dir> check`` when the
deployer runs as root there; otherwise ``postconf -c <dir> -n`` (``postfix check`` is for root
only), which reports syntax errors in main.cf and master.cf with file and line.

Several hostnames on one Postfix (two [[mta]] tables listing this target, say
``mx`` on port 25 and ``submit`` on 587): the chain files of every hostname are
written, plus the SNI map ``<cert_dir>/sni`` (``name  file[,file]`` for the
hostname and every name of its certificates, ``*.d`` as ``.d``), compiled with
``postmap -F <sni_map_type>:<cert_dir>/sni`` (option ``sni_map_type``, default
``hash``): ``-F`` stores the files' contents in the map, so the map is rebuilt
at every deployment and is as private as the keys (0600, or 0640 with a group).
``smtpd_tls_chain_files`` stays the primary's files: the certificate every
client that sends no SNI gets (most SMTP senders).  With ``manage_config`` both
settings are written with ``postconf -e``; without it, main.cf must already say::

    smtpd_tls_chain_files = <cert_dir>/<primary>.rsa.pem
    tls_server_sni_maps = hash:<cert_dir>/sni

and a deployment that finds otherwise changes nothing and says so.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from pathlib import PurePosixPath
from typing import Self

from certmgr.errors import ConfigError, DeployError
from certmgr.interfaces import DeployRequest, Installed, Options, ProviderEnv
from providers.deployers.base import (
    Command,
    FileSpec,
    HostOptions,
    MailDeployer,
    cert_path,
    read_host_options,
    split_bundles,
)
from providers.deployers.setup import Created, Required, Run
from providers.deployers.tlspolicy import Entry, parse_postfix_map, render_postfix_map

#: the file postmap makes from a source file, per map type
_MAP_SUFFIX = {"hash": ".db", "btree": ".db", "lmdb": ".lmdb", "cdb": ".cdb"}


class PostfixDeployer(MailDeployer):
    description = ("Postfix: key+cert+chain per algorithm for smtpd_tls_chain_files, postfix check "
                   "(postconf when unprivileged), reload")
    kind = "postfix"

    def __init__(self, name: str, hosting: HostOptions, *, config_dir: str, cert_dir: str,
                 manage_config: bool, reload_command: Sequence[str], sni_map_type: str = "hash",
                 tls_policy_map: str | None = None) -> None:
        super().__init__(name, hosting)
        self.tls_policy_map = tls_policy_map or f"{cert_dir}/tls_policy"
        self.config_dir = config_dir
        self.cert_dir = cert_dir
        self.manage_config = manage_config
        self.reload_command = tuple(reload_command)
        self.sni_map_type = sni_map_type

    @classmethod
    def from_config(cls, name: str, options: Options, env: ProviderEnv) -> Self:
        # Paths name files on the MTA host, which may be remote: taken as given, not resolved here.
        config_dir = options.str("config_dir").rstrip("/") or "/"
        cert_dir = options.str("cert_dir", f"{config_dir}/certmgr")
        if re.search(r"[\s,]", cert_dir):
            # smtpd_tls_chain_files and the SNI map's "name file,file" split at whitespace and
            # commas: Postfix would look for pieces of the path and serve no certificate at all
            raise ConfigError(f"{cert_dir!r} contains whitespace or a comma, which Postfix reads as a list "
                              "separator in smtpd_tls_chain_files; choose a directory without them",
                              table=options.where, key="cert_dir")
        policy_map = options.str("tls_policy_map", f"{cert_dir}/tls_policy")
        if re.search(r"[\s,]", policy_map):
            # smtp_tls_policy_maps is a list split at whitespace and commas: the SMTP client
            # would open pieces of the path and defer mail to every domain
            raise ConfigError(f"{policy_map!r} contains whitespace or a comma, which Postfix reads as a list "
                              "separator in smtp_tls_policy_maps; choose a path without them",
                              table=options.where, key="tls_policy_map")
        deployer = cls(
            name,
            read_host_options(options),
            config_dir=config_dir,
            cert_dir=cert_dir,
            manage_config=options.bool("manage_config", False),
            reload_command=options.command("reload_command", ["postfix", "-c", config_dir, "reload"]),
            sni_map_type=options.str("sni_map_type", "hash", choices=tuple(_MAP_SUFFIX)),
            tls_policy_map=policy_map,
        )
        options.finish()
        return deployer

    def where(self) -> str:
        return f"postfix:{self.config_dir}"

    def required_paths(self) -> list[Required]:
        return [("config_dir", self.config_dir, "dir"), ("config_dir", f"{self.config_dir}/main.cf", "file")]

    def created_dirs(self) -> list[Created]:
        return [("cert_dir", self.cert_dir), ("tls_policy_map", str(PurePosixPath(self.tls_policy_map).parent))]

    def setup_commands(self) -> list[Run]:
        return [("reload_command", self.reload_command)]

    def several_hostnames(self) -> str | None:
        return None  # tls_server_sni_maps (Postfix 3.4 and later)

    def instance(self) -> tuple[str, str] | None:
        return f"postfix {self.config_dir} on {self.host.label}", "config_dir"

    @property
    def sni_source(self) -> str:
        return f"{self.cert_dir}/sni"

    @property
    def sni_map(self) -> str:
        return f"{self.sni_map_type}:{self.sni_source}"

    def _chain_files(self, hostname: str, request: DeployRequest) -> list[str]:
        host = next(h for h in request.all_hosts if h.hostname == hostname)
        return [cert_path(self.cert_dir, hostname, b.key_alg, "pem") for b in host.bundles]

    def layout(self, request: DeployRequest) -> list[FileSpec]:
        split_bundles(request)
        files = [
            FileSpec(cert_path(self.cert_dir, host.hostname, b.key_alg, "pem"),
                     b.key_pem + b.cert_pem + b.chain_pem, secret=True)
            for host in request.all_hosts for b in host.bundles
        ]
        if not self._map_wanted(request):
            return files
        lines = ["# written by certmgr: do not edit, it is replaced at every deployment"]
        seen: set[str] = set()
        for host in request.all_hosts:
            for name in host.names:
                key = name[1:] if name.startswith("*.") else name  # "*.d" -> ".d": Postfix's parent-domain key
                if key not in seen:
                    seen.add(key)
                    lines.append(f"{key} {','.join(self._chain_files(host.hostname, request))}")
        # secret: postmap -F copies the files' contents (keys too) into the map, with this file's mode
        return [*files, FileSpec(self.sni_source, ("\n".join(lines) + "\n").encode(), secret=True)]

    def _map_now(self) -> str:
        """The tls_server_sni_maps main.cf names; "" also when postconf cannot say (a main.cf
        it cannot parse is reported by the config test, with its own words)."""
        try:
            return self._postconf("tls_server_sni_maps").get("tls_server_sni_maps", "")
        except DeployError:
            return ""

    def _map_wanted(self, request: DeployRequest) -> bool:
        """Several hostnames; or one, while main.cf (not certmgr's to edit) still names the map,
        which then must hold the new certificate too: a map keeps copies of the files."""
        if request.hosts:
            return True
        return not self.manage_config and self._map_now() == self.sni_map

    def extra_backups(self, request: DeployRequest) -> list[str]:
        out = [f"{self.config_dir}/main.cf"] if self.manage_config else []
        if self._map_wanted(request) or self._map_now() == self.sni_map:
            out.append(self.sni_source + _MAP_SUFFIX[self.sni_map_type])
        return out

    def _settings(self, request: DeployRequest) -> dict[str, str]:
        settings = {"smtpd_tls_chain_files": ", ".join(self._chain_files(request.hostname, request))}
        if request.hosts:
            settings["tls_server_sni_maps"] = self.sni_map
        return settings

    def preflight(self, request: DeployRequest) -> None:
        if self.manage_config:
            return
        if not request.hosts:
            self._preflight_one(request)
            return
        wanted = self._settings(request)
        now = self._postconf(*wanted)
        wrong = [k for k, v in wanted.items() if now.get(k) != v]
        if wrong:
            need = "; ".join(f"{k} = {wanted[k]}" for k in wrong)
            says = "; ".join(f"{k} = {now.get(k, '')}" for k in wrong)
            raise DeployError(f"{self.config_dir}/main.cf must say: {need} (or set manage_config = true); "
                              f"it says: {says}")

    def _preflight_one(self, request: DeployRequest) -> None:
        """One hostname: a main.cf whose smtpd_tls_chain_files names other files would keep serving
        them after the reload (found only by the verification, after a reload and a rollback).
        Unset, the legacy smtpd_tls_cert_file settings may name the files: left to the verification."""
        try:
            now = self._postconf("smtpd_tls_chain_files").get("smtpd_tls_chain_files", "")
        except DeployError:  # a main.cf postconf cannot read: the config test says so, in its words
            return
        listed = {f for f in now.replace(",", " ").split() if f}
        wanted = self._chain_files(request.hostname, request)
        if listed and not set(wanted) <= listed:
            raise DeployError(f"{self.config_dir}/main.cf must say: smtpd_tls_chain_files = {', '.join(wanted)} "
                              f"(or set manage_config = true); it says: smtpd_tls_chain_files = {now}")

    def _postconf(self, *names: str) -> dict[str, str]:
        result = self.host.run(("postconf", "-c", self.config_dir, *names))
        if result.returncode != 0:
            raise DeployError(f"`postconf -c {self.config_dir}` failed: {result.output}")
        out: dict[str, str] = {}
        for line in result.output.splitlines():
            name, sep, value = line.partition("=")
            if sep:
                out[name.strip()] = value.strip()
        return out

    def configure(self, request: DeployRequest) -> list[Command]:
        commands = []
        if self._map_wanted(request):
            commands.append(Command(("postmap", "-c", self.config_dir, "-F", self.sni_map)))
        if self.manage_config:
            commands += [Command(("postconf", "-c", self.config_dir, "-e", f"{k} = {v}"))
                         for k, v in self._settings(request).items()]
            if not request.hosts and self._map_now() == self.sni_map:
                # one hostname again: the map of the hostnames that were would serve old copies
                commands.append(Command(("postconf", "-c", self.config_dir, "-X", "tls_server_sni_maps")))
        return commands

    def referenced_files(self) -> list[str]:
        try:
            now = self._postconf("smtpd_tls_chain_files", "tls_server_sni_maps")
        except DeployError:  # a main.cf postconf cannot read: the reload that follows says so
            return []
        files = [f for f in now.get("smtpd_tls_chain_files", "").replace(",", " ").split() if f]
        kind, _, path = now.get("tls_server_sni_maps", "").partition(":")
        if kind in _MAP_SUFFIX and path.startswith("/"):
            files.append(path + _MAP_SUFFIX[kind])
        return files

    def check(self) -> Command:
        # `postfix check` is the full test but only root may run it (as anyone else it exits 1
        # and says nothing); `postconf` parses main.cf and master.cf as Postfix will, names the
        # file and line of a syntax error on stderr, and needs only read access.
        if self.host.privileged:
            return Command(("postfix", "-c", self.config_dir, "check"))
        return Command(("postconf", "-c", self.config_dir, "-n"))

    def silent_failure(self, command: Command) -> str:
        if PurePosixPath(command.argv[0]).name != "postfix":
            return super().silent_failure(command)
        if self.host.privileged:
            return "it printed nothing: Postfix writes the reason to its mail log (maillog_file or syslog)"
        return ("it printed nothing: the postfix command writes its reasons to the mail log, and its "
                "check and reload are for root only, while certmgr does not run as root here; set "
                'reload_command, e.g. ["sudo", "-n", "/usr/sbin/postfix", "-c", '
                f'"{self.config_dir}", "reload"] with a sudoers rule for exactly that command')

    def reload(self, paths: Sequence[str]) -> list[Command]:
        return [Command(self.reload_command)]

    def database_type(self) -> str:
        """The MTA's ``default_database_type`` (hash on Debian, lmdb on some others)."""
        result = self.host.run(("postconf", "-c", self.config_dir, "-h", "default_database_type"))
        value = result.stdout.strip()
        if result.returncode != 0 or not value.isidentifier():
            raise DeployError(f"{self.target}: cannot read default_database_type with postconf: "
                              f"{result.output.strip() or result.returncode}")
        return value

    def install_tls_policy(self, entries: Sequence[Entry], keep: Collection[str]) -> Installed | None:
        """Write the partner TLS policy map, ``postmap`` it, (set smtp_tls_policy_maps), check,
        reload; undo on failure.  None when the map already says exactly this."""
        old = self.host.read(self.tls_policy_map)
        old_text = old.decode() if old is not None else ""
        text = render_postfix_map(entries, keep, old_text)
        dbtype = self.database_type()
        table = f"{dbtype}:{self.tls_policy_map}"
        if old is not None and text == old_text and not self._needs_policy_setting(table):
            return None
        indexed = [self.tls_policy_map + _MAP_SUFFIX[dbtype]] if dbtype in _MAP_SUFFIX else []
        commands = [Command(("postmap", "-c", self.config_dir, table))]
        if self.manage_config:
            commands.append(Command(("postconf", "-c", self.config_dir, "-e", f"smtp_tls_policy_maps = {table}")))
        backup = self.install_files(
            [FileSpec(self.tls_policy_map, text.encode(), secret=False)],
            extra_backups=[*indexed, *([f"{self.config_dir}/main.cf"] if self.manage_config else [])],
            configure=commands, what="the partner TLS policy")
        return Installed(target=self.target, verify=(), backup=backup)

    def _needs_policy_setting(self, table: str) -> bool:
        if not self.manage_config:
            return False
        result = self.host.run(("postconf", "-c", self.config_dir, "-h", "smtp_tls_policy_maps"))
        return result.returncode != 0 or result.stdout.strip() != table

    def effective_settings(self, names: Sequence[str]) -> dict[str, str]:
        """``postconf -x NAME…``: the values Postfix uses, defaults included and ``$name`` expanded."""
        result = self.host.run(("postconf", "-c", self.config_dir, "-x", *names))
        if result.returncode != 0:
            raise DeployError(f"{self.target}: postconf -x failed: {result.output.strip()}")
        out: dict[str, str] = {}
        for line in result.stdout.splitlines():
            name, sep, value = line.partition(" = ")
            if sep:
                out[name.strip()] = value.strip()
            elif line.strip().endswith(" ="):
                out[line.strip()[:-2].strip()] = ""
        return out

    def read_file(self, path: str) -> bytes | None:
        """A file on the MTA host (a certificate its settings name), None when absent."""
        return self.host.read(path)

    def tls_policy_present(self) -> bool:
        """Does this MTA hold a partner TLS policy written before (to be updated, or emptied)?"""
        return self.host.read(self.tls_policy_map) is not None

    def tls_policy_domains(self) -> frozenset[str]:
        """The partner domains whose TLS policy this MTA enforces now (the entries of its map)."""
        data = self.host.read(self.tls_policy_map)
        return frozenset(parse_postfix_map(data.decode("utf-8", "replace"))) if data is not None else frozenset()

    def cert_files(self, hostname: str, key_algs: Sequence[str]) -> list[str]:
        """The files certmgr writes for ``hostname`` (what main.cf should serve)."""
        return [cert_path(self.cert_dir, hostname, alg, "pem") for alg in key_algs]
