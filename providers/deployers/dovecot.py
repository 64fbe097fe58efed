"""Dovecot: certificate and key files per algorithm, an optional config snippet, reload.

Needs ``doveconf`` and ``doveadm`` on the host (local or ``host = "ssh://…"``).
Options: ``cert_dir`` (required); ``version`` ("2.3", default, or "2.4": the
setting names changed); ``config_file`` (optional: a snippet certmgr owns and
rewrites, included from dovecot.conf, naming the files: 2.3 ``ssl_cert = </…``
``ssl_key = </…`` and ``ssl_alt_cert``/``ssl_alt_key`` for a second algorithm;
2.4 ``ssl_server_cert_file``/``ssl_server_key_file`` and the ``_alt_`` pair);
``dovecot_config`` (the main config, passed as ``-c`` to doveconf and doveadm);
``reload_command`` (default ``doveadm reload``); ``verify`` ("host:port", default the
MTA's own probe target when it is IMAP or POP3 (its ``smtp`` and ``protocol``), else
``<hostname>:143``, or 993 with ``implicit_tls``; 110 and 995 for POP3), ``verify_protocol``
("imap", default, or "pop3" for a server that speaks only POP3),
``implicit_tls``; ``group``.  Config test: ``doveconf -n``.

Several hostnames on one Dovecot (several [[mta]] tables listing this target)
need ``config_file``: the primary's files are the top-level settings (what a
client that sends no SNI gets), and each hostname and name of its certificates
gets a ``local_name NAME { ssl_cert = </… ssl_key = </… }`` block (wildcard
names are left out: ``local_name`` matches exact names).  Without SNI support
``verify`` is probed once per hostname with its SNI name and once without.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from typing import Self

from certmgr.errors import DeployError
from certmgr.interfaces import DeployRequest, Options, ProviderEnv, VerifyTarget
from providers.deployers.base import (
    Command,
    FileSpec,
    HostOptions,
    MailDeployer,
    cert_and_key_files,
    cert_path,
    parse_target,
    read_host_options,
)
from providers.deployers.setup import Created, Required, Run

_NAMES = {
    "2.3": ("ssl_cert = <{crt}", "ssl_key = <{key}", "ssl_alt_cert = <{crt}", "ssl_alt_key = <{key}"),
    "2.4": ("ssl_server_cert_file = {crt}", "ssl_server_key_file = {key}",
            "ssl_server_alt_cert_file = {crt}", "ssl_server_alt_key_file = {key}"),
}


class DovecotDeployer(MailDeployer):
    description = "Dovecot: cert/key files per algorithm (+ optional ssl_cert snippet), doveconf -n, reload"
    kind = "dovecot"

    def __init__(self, name: str, hosting: HostOptions, *, cert_dir: str, version: str,
                 config_file: str | None, dovecot_config: str | None, reload_command: Sequence[str],
                 verify: VerifyTarget | None, protocol: str, implicit_tls: bool) -> None:
        super().__init__(name, hosting)
        self.cert_dir = cert_dir
        self.version = version
        self.config_file = config_file
        self.dovecot_config = dovecot_config
        self.reload_command = tuple(reload_command)
        self.verify = verify
        self.protocol = protocol
        self.implicit_tls = implicit_tls

    @classmethod
    def from_config(cls, name: str, options: Options, env: ProviderEnv) -> Self:
        dovecot_config = options.str("dovecot_config", None)
        with_config = ["-c", dovecot_config] if dovecot_config else []
        protocol = options.str("verify_protocol", "imap", choices=("imap", "pop3"))
        implicit = options.bool("implicit_tls", False)
        verify_value = options.str("verify", None)
        deployer = cls(
            name,
            read_host_options(options),
            cert_dir=options.str("cert_dir"),
            version=options.str("version", "2.3", choices=tuple(_NAMES)),
            config_file=options.str("config_file", None),
            dovecot_config=dovecot_config,
            reload_command=options.command("reload_command", ["doveadm", *with_config, "reload"]),
            verify=parse_target(verify_value, protocol=protocol, implicit_tls=implicit, key="verify")
            if verify_value else None,
            protocol=protocol,
            implicit_tls=implicit,
        )
        options.finish()
        return deployer

    def where(self) -> str:
        return f"dovecot:{self.config_file or self.cert_dir}"

    def required_paths(self) -> list[Required]:
        return [("dovecot_config", self.dovecot_config, "file")] if self.dovecot_config else []

    def created_dirs(self) -> list[Created]:
        dirs: list[Created] = [("cert_dir", self.cert_dir)]
        if self.config_file:
            dirs.append(("config_file", posixpath.dirname(self.config_file) or "."))
        return dirs

    def setup_commands(self) -> list[Run]:
        return [("reload_command", self.reload_command)]

    def instance(self) -> tuple[str, str] | None:
        return f"dovecot {self.dovecot_config or '(default config)'} on {self.host.label}", "dovecot_config"

    def several_hostnames(self) -> str | None:
        if self.config_file is None:
            return "it needs config_file (the file certmgr writes the local_name blocks into)"
        return None

    def _settings(self, hostname: str, request: DeployRequest) -> list[str]:
        """The ssl_cert/ssl_key lines (and the _alt_ pair) naming ``hostname``'s files."""
        host = next(h for h in request.all_hosts if h.hostname == hostname)
        names = _NAMES[self.version]
        lines = []
        for slot, b in enumerate(host.bundles):
            crt = cert_path(self.cert_dir, hostname, b.key_alg, "crt")
            key = cert_path(self.cert_dir, hostname, b.key_alg, "key")
            lines += [names[2 * slot].format(crt=crt), names[2 * slot + 1].format(key=key)]
        return lines

    def layout(self, request: DeployRequest) -> list[FileSpec]:
        files = cert_and_key_files(self.cert_dir, request)
        if self.config_file is None:
            return files
        lines = ["# written by certmgr: do not edit, it is replaced at every deployment"]
        lines += self._settings(request.hostname, request)  # the default: clients without SNI
        for host in request.hosts:
            for name in (n for n in host.names if not n.startswith("*.")):
                lines += [f"local_name {name} {{", *(f"  {s}" for s in self._settings(host.hostname, request)),
                          "}"]
        return [*files, FileSpec(self.config_file, ("\n".join(lines) + "\n").encode(), secret=False)]

    def referenced_files(self) -> list[str]:
        if self.config_file is None:
            return []
        text = self.host.read(self.config_file)
        if text is None:
            return []
        out = []
        for line in text.decode("utf-8", "replace").splitlines():
            name, sep, value = line.partition("=")
            if sep and name.strip().startswith("ssl_"):
                out.append(value.strip().lstrip("<"))
        return out

    def check(self) -> Command:
        return Command(("doveconf", *(["-c", self.dovecot_config] if self.dovecot_config else []), "-n"))

    def reload(self, paths: Sequence[str]) -> list[Command]:
        return [Command(self.reload_command)]

    def effective_settings(self, names: Sequence[str]) -> dict[str, str]:
        """``doveconf NAME…``: the values Dovecot uses, defaults included; a name this version does
        not know (2.3 and 2.4 differ) is left out of doveconf's answer, and so of the result."""
        result = self.host.run(("doveconf", *(["-c", self.dovecot_config] if self.dovecot_config else []), *names))
        if result.returncode != 0:
            raise DeployError(f"{self.target}: doveconf failed: {result.output.strip()}")
        out: dict[str, str] = {}
        for line in result.stdout.splitlines():
            name, sep, value = line.partition("=")
            if sep and not line[:1].isspace():
                out[name.strip()] = value.strip()
        return out

    def read_file(self, path: str) -> bytes | None:
        return self.host.read(path)

    def cert_files(self, hostname: str, key_algs: Sequence[str]) -> list[str]:
        """The certificate files certmgr writes for ``hostname`` (what ssl_cert should name)."""
        return [cert_path(self.cert_dir, hostname, alg, "crt") for alg in key_algs]

    def verify_targets(self, request: DeployRequest) -> tuple[VerifyTarget, ...]:
        if self.verify is not None:
            return (self.verify,)
        if request.verify.protocol in ("imap", "pop3"):
            return (request.verify,)  # the MTA's own probe target (`smtp`, `protocol`) is this server
        port = {("imap", False): 143, ("imap", True): 993, ("pop3", False): 110,
                ("pop3", True): 995}[(self.protocol, self.implicit_tls)]
        return (VerifyTarget(request.hostname, port, self.protocol, self.implicit_tls),)
