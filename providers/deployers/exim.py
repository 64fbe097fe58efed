"""Exim: certificate and key files per algorithm, ``exim -bV`` config test, reload.

Needs the Exim binary on the host (local or ``host = "ssh://…"``).  Options:
``cert_dir`` (required), ``exim_binary`` (default ``exim4``, Debian's name),
``config_file`` (optional: the config ``-C`` passes to the test, default Exim's
own), ``reload_command`` (default ``systemctl reload exim4``), ``group`` (on
Debian ``Debian-exim``: Exim reads its key as that user, so keys become 0640
root:Debian-exim), plus the shared host options.

Files: ``<cert_dir>/<hostname>.<rsa|ecdsa>.crt`` (leaf + chain) and ``.key``.
Partner TLS policy: ``tls_policy_file`` (default ``<cert_dir>/tls_policy``), an
lsearch file of ``domain: level`` lines that the smtp transport reads (see the
README for the transport options); then ``exim -bV`` and the reload, undone on
failure.  Exim verifies certificates against the MX host name only, so partners
with ``require = "secure"`` or ``match`` are refused for Exim targets.

The Exim config names the certificate files; with dual RSA+ECDSA keys both settings are
colon-separated lists in the same order (Exim 4.92 and later)::

    tls_certificate = /etc/exim4/certmgr/mx1.example.com.rsa.crt : /etc/exim4/certmgr/mx1.example.com.ecdsa.crt
    tls_privatekey  = /etc/exim4/certmgr/mx1.example.com.rsa.key : /etc/exim4/certmgr/mx1.example.com.ecdsa.key

Option ``tls_config``: a file certmgr owns and rewrites with exactly these two
settings, ``.include``d from the Exim configuration.  It is required for several
hostnames on one Exim (several [[mta]] tables listing this target): the settings
then choose by the name the client sent, the primary's files when it sent none
(Exim expands them again once it has the SNI name)::

    tls_certificate = ${if or{{eqi{$tls_in_sni}{submit.example.com}}}{<submit files>}{<primary files>}}
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Collection, Sequence
from typing import Self

from certmgr.errors import DeployError
from certmgr.interfaces import DeployRequest, Installed, Options, ProviderEnv
from providers.deployers.base import (
    Command,
    FileSpec,
    HostOptions,
    MailDeployer,
    cert_and_key_files,
    cert_path,
    read_host_options,
)
from providers.deployers.setup import Created, Required, Run
from providers.deployers.tlspolicy import Entry, exim_problem, parse_exim_map, render_exim_map


class EximDeployer(MailDeployer):
    description = "Exim: cert/key files per algorithm for tls_certificate/tls_privatekey, exim -bV, reload"
    kind = "exim"

    def __init__(self, name: str, hosting: HostOptions, *, cert_dir: str, exim_binary: str,
                 config_file: str | None, reload_command: Sequence[str], tls_config: str | None = None,
                 tls_policy_file: str | None = None) -> None:
        super().__init__(name, hosting)
        self.tls_config = tls_config
        self.tls_policy_file = tls_policy_file or f"{cert_dir}/tls_policy"
        self.cert_dir = cert_dir
        self.exim_binary = exim_binary
        self.config_file = config_file
        self.reload_command = tuple(reload_command)

    @classmethod
    def from_config(cls, name: str, options: Options, env: ProviderEnv) -> Self:
        cert_dir = options.str("cert_dir")
        deployer = cls(
            name,
            read_host_options(options),
            cert_dir=cert_dir,
            exim_binary=options.str("exim_binary", "exim4"),
            config_file=options.str("config_file", None),
            reload_command=options.command("reload_command", ["systemctl", "reload", "exim4"]),
            tls_config=options.str("tls_config", None),
            tls_policy_file=options.str("tls_policy_file", f"{cert_dir}/tls_policy"),
        )
        options.finish()
        return deployer

    def where(self) -> str:
        return f"exim:{self.cert_dir}"

    def required_paths(self) -> list[Required]:
        return [("config_file", self.config_file, "file")] if self.config_file else []

    def created_dirs(self) -> list[Created]:
        return [("cert_dir", self.cert_dir), ("tls_policy_file", posixpath.dirname(self.tls_policy_file) or ".")]

    def setup_commands(self) -> list[Run]:
        return [("reload_command", self.reload_command), ("exim_binary", (self.exim_binary,))]

    def instance(self) -> tuple[str, str] | None:
        return f"exim {self.config_file or '(default config)'} on {self.host.label}", "config_file"

    def several_hostnames(self) -> str | None:
        if self.tls_config is None:
            return ("it needs tls_config (the file certmgr writes tls_certificate and tls_privatekey into, "
                    ".include'd from the Exim configuration)")
        return None

    def _files(self, hostname: str, request: DeployRequest, suffix: str) -> str:
        host = next(h for h in request.all_hosts if h.hostname == hostname)
        return " : ".join(cert_path(self.cert_dir, hostname, b.key_alg, suffix) for b in host.bundles)

    def _choose(self, request: DeployRequest, suffix: str) -> str:
        """The setting's value: by $tls_in_sni for several hostnames, the primary's otherwise."""
        value = self._files(request.hostname, request, suffix)
        for host in reversed(request.hosts[1:]):
            names = [n for n in host.names if not n.startswith("*.")]
            test = "".join(f"{{eqi{{$tls_in_sni}}{{{n}}}}}" for n in names)
            value = f"${{if or{{{test}}}{{{self._files(host.hostname, request, suffix)}}}{{{value}}}}}"
        return value

    def layout(self, request: DeployRequest) -> list[FileSpec]:
        files = cert_and_key_files(self.cert_dir, request)
        if self.tls_config is None:
            return files
        text = ("# written by certmgr: do not edit, it is replaced at every deployment\n"
                f"tls_certificate = {self._choose(request, 'crt')}\n"
                f"tls_privatekey = {self._choose(request, 'key')}\n")
        return [*files, FileSpec(self.tls_config, text.encode(), secret=False)]

    def referenced_files(self) -> list[str]:
        text = self.host.read(self.tls_config) if self.tls_config else None
        if text is None:
            return []
        return sorted(set(re.findall(r"(/[^\s:{}]+)", text.decode("utf-8", "replace"))))

    def check(self) -> Command:
        config = ["-C", self.config_file] if self.config_file else []
        return Command((self.exim_binary, *config, "-bV"))

    def reload(self, paths: Sequence[str]) -> list[Command]:
        return [Command(self.reload_command)]

    def install_tls_policy(self, entries: Sequence[Entry], keep: Collection[str]) -> Installed | None:
        """Write the partner TLS policy file, test, reload; undo on failure.  None when the file
        already says exactly this; nothing is written when an entry cannot be enforced by Exim."""
        problems = [p for p in map(exim_problem, entries) if p]
        if problems:
            raise DeployError(f"{self.target}: the partner TLS policy was not changed: " + "; ".join(problems))
        old = self.host.read(self.tls_policy_file)
        old_text = old.decode() if old is not None else ""
        text = render_exim_map(entries, keep, old_text)
        if old is not None and text == old_text:
            return None
        backup = self.install_files([FileSpec(self.tls_policy_file, text.encode(), secret=False)],
                                    extra_backups=[], configure=[], what="the partner TLS policy")
        return Installed(target=self.target, verify=(), backup=backup)

    def _bp(self, *what: str) -> str:
        config = ["-C", self.config_file] if self.config_file else []
        result = self.host.run((self.exim_binary, *config, "-bP", *what))
        if result.returncode != 0:
            raise DeployError(f"{self.target}: exim -bP {' '.join(what)} failed: {result.output.strip()}")
        return result.stdout

    def effective_settings(self) -> tuple[str, dict[str, str]]:
        """(``exim -bP`` main options, transport name → ``exim -bP transport NAME``), as text to parse."""
        transports = {name: self._bp("transport", name) for name in self._bp("transport_list").split()}
        return self._bp(), transports

    def read_file(self, path: str) -> bytes | None:
        """A file on the MTA host (a certificate its settings name), None when absent."""
        return self.host.read(path)

    def tls_policy_present(self) -> bool:
        """Does this MTA hold a partner TLS policy written before (to be updated, or emptied)?"""
        return self.host.read(self.tls_policy_file) is not None

    def tls_policy_domains(self) -> frozenset[str]:
        """The partner domains whose TLS policy this MTA enforces now (the entries of its map)."""
        data = self.host.read(self.tls_policy_file)
        return frozenset(parse_exim_map(data.decode("utf-8", "replace"))) if data is not None else frozenset()

    def cert_files(self, hostname: str, key_algs: Sequence[str]) -> list[str]:
        """The certificate files certmgr writes for ``hostname`` (what tls_certificate should name)."""
        return [cert_path(self.cert_dir, hostname, alg, "crt") for alg in key_algs]
