"""Webroot: a web server's certificate, key and documents (the MTA-STS policy host).

For the ``web`` target of ``[mta_sts."domain"]``: nginx, Apache or any server that reads
one certificate file, one key file and a document root.  Options: ``webroot`` (the
document root, required), ``cert_file`` (full chain, required), ``key_file`` (required),
``reload`` (an argument list run without a shell, required, e.g. ``["nginx", "-s",
"reload"]``), ``check`` (optional config test, e.g. ``["nginx", "-t"]``), plus the shared
host options (``host``, ``ssh_identity``, ``ssh_known_hosts``, ``group``).

Documents (``DeployRequest.documents``, e.g. ``/.well-known/mta-sts.txt``) go under the
webroot, 0644; the key 0600.  Everything is one unit with the certificate: backed up,
written atomically, tested, reloaded, and put back on any failure.  Whether the server
then serves them over HTTPS is checked by the caller (certmgr fetches the policy as a
sender does), which calls :meth:`rollback` when it does not.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from typing import Self

from certmgr.errors import ConfigError, DeployError
from certmgr.interfaces import DeployRequest, Options, ProviderEnv, VerifyTarget
from providers.deployers.base import Command, FileSpec, HostOptions, MailDeployer, read_host_options, split_bundles
from providers.deployers.setup import Created, Run


def _absolute(options: Options, key: str) -> str:
    value: str = options.str(key)
    if not value.startswith("/"):
        raise ConfigError(f"must be an absolute path on the web server's host, got {value!r}", table=options.where,
                          key=key)
    return posixpath.normpath(value)


class WebrootDeployer(MailDeployer):
    description = "Webroot: a web server's certificate, key and documents (the MTA-STS policy host), then reload"
    kind = "webroot"

    def __init__(self, name: str, hosting: HostOptions, *, webroot: str, cert_file: str, key_file: str,
                 reload: Sequence[str], check: Sequence[str] | None) -> None:
        super().__init__(name, hosting)
        self.webroot = webroot
        self.cert_file = cert_file
        self.key_file = key_file
        self.reload_command = tuple(reload)
        self.check_command = tuple(check) if check else None

    @classmethod
    def from_config(cls, name: str, options: Options, env: ProviderEnv) -> Self:
        hosting = read_host_options(options)
        deployer = cls(name, hosting, webroot=_absolute(options, "webroot"), cert_file=_absolute(options, "cert_file"),
                       key_file=_absolute(options, "key_file"), reload=options.command("reload"),
                       check=options.command("check", None))
        options.finish()
        if deployer.key_file == deployer.cert_file:
            raise ConfigError("is also cert_file: the key and the certificate would overwrite each other; "
                              "name two files", table=options.where, key="key_file")
        if (deployer.key_file + "/").startswith(deployer.webroot.rstrip("/") + "/"):
            raise ConfigError(f"{deployer.key_file} is inside the webroot {deployer.webroot}: the web server would "
                              "serve the private key to anyone; keep it outside the document root",
                              table=options.where, key="key_file")
        return deployer

    def where(self) -> str:
        return f"webroot:{self.webroot}"

    def created_dirs(self) -> list[Created]:
        return [("webroot", self.webroot), ("cert_file", posixpath.dirname(self.cert_file)),
                ("key_file", posixpath.dirname(self.key_file))]

    def setup_commands(self) -> list[Run]:
        return [("reload", self.reload_command), *([("check", self.check_command)] if self.check_command else [])]

    def document_root(self) -> str:
        return self.target

    def several_hostnames(self) -> str | None:
        return "it installs one certificate file and one key file"

    def instance(self) -> tuple[str, str] | None:
        return f"webroot {self.cert_file} on {self.host.label}", "cert_file"

    def _document(self, url_path: str) -> str:
        path = posixpath.normpath(posixpath.join(self.webroot, url_path.lstrip("/")))
        if not url_path.startswith("/") or not path.startswith(self.webroot.rstrip("/") + "/"):
            raise DeployError(f"document {url_path!r} would land outside the webroot {self.webroot}")
        return path

    def layout(self, request: DeployRequest) -> list[FileSpec]:
        split_bundles(request)
        if len(request.bundles) != 1:
            raise DeployError(f"{request.hostname}: a webroot target takes one certificate, "
                              f"got {len(request.bundles)}")
        bundle = request.bundles[0]
        files = [FileSpec(self.key_file, bundle.key_pem, True), FileSpec(self.cert_file, bundle.fullchain_pem, False)]
        files += [FileSpec(self._document(path), data, False) for path, data in request.documents]
        return files

    def check(self) -> Command | None:
        return Command(self.check_command) if self.check_command else None

    def reload(self, paths: Sequence[str]) -> list[Command]:
        return [Command(self.reload_command)]

    def verify_targets(self, request: DeployRequest) -> tuple[VerifyTarget, ...]:
        return ()  # HTTPS, checked by the caller: the STARTTLS probe does not apply
