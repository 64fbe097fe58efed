"""Postfix: one file per key algorithm with key, certificate and chain together.

Needs: the ``postfix`` and ``postconf`` commands on the MTA host (local or
``host = "ssh://…"``).  Options: ``config_dir`` (required), ``cert_dir``
(default ``<config_dir>/certmgr``), ``manage_config`` (default false: when true,
``smtpd_tls_chain_files`` is set with ``postconf -c <config_dir> -e``; otherwise
main.cf must already point at the files), ``reload_command`` (default
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
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import PurePosixPath
from typing import Self

from certmgr.errors import DeployError
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
from providers.deployers.tlspolicy import POSTMAP_SUFFIX, Entry, render_postfix_map


class PostfixDeployer(MailDeployer):
    description = ("Postfix: key+cert+chain per algorithm for smtpd_tls_chain_files, postfix check "
                   "(postconf when unprivileged), reload")
    kind = "postfix"

    def __init__(self, name: str, hosting: HostOptions, *, config_dir: str, cert_dir: str,
                 manage_config: bool, reload_command: Sequence[str], tls_policy_map: str | None = None) -> None:
        super().__init__(name, hosting)
        self.tls_policy_map = tls_policy_map or f"{cert_dir}/tls_policy"
        self.config_dir = config_dir
        self.cert_dir = cert_dir
        self.manage_config = manage_config
        self.reload_command = tuple(reload_command)

    @classmethod
    def from_config(cls, name: str, options: Options, env: ProviderEnv) -> Self:
        # Paths name files on the MTA host, which may be remote: taken as given, not resolved here.
        config_dir = options.str("config_dir").rstrip("/") or "/"
        cert_dir = options.str("cert_dir", f"{config_dir}/certmgr")
        deployer = cls(
            name,
            read_host_options(options),
            config_dir=config_dir,
            cert_dir=cert_dir,
            manage_config=options.bool("manage_config", False),
            reload_command=options.command("reload_command", ["postfix", "-c", config_dir, "reload"]),
            tls_policy_map=options.str("tls_policy_map", f"{cert_dir}/tls_policy"),
        )
        options.finish()
        return deployer

    def where(self) -> str:
        return f"postfix:{self.config_dir}"

    def layout(self, request: DeployRequest) -> list[FileSpec]:
        split_bundles(request)
        return [
            FileSpec(cert_path(self.cert_dir, request.hostname, b.key_alg, "pem"),
                     b.key_pem + b.cert_pem + b.chain_pem, secret=True)
            for b in request.bundles
        ]

    def extra_backups(self, request: DeployRequest) -> list[str]:
        return [f"{self.config_dir}/main.cf"] if self.manage_config else []

    def configure(self, request: DeployRequest) -> list[Command]:
        if not self.manage_config:
            return []
        files = ", ".join(f.path for f in self.layout(request))
        return [Command(("postconf", "-c", self.config_dir, "-e", f"smtpd_tls_chain_files = {files}"))]

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
        indexed = [self.tls_policy_map + POSTMAP_SUFFIX[dbtype]] if dbtype in POSTMAP_SUFFIX else []
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
