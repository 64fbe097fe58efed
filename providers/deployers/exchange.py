"""Microsoft Exchange: a PKCS#12 (PFX) bundle and a PowerShell script that imports and enables it.

Needs a way to run PowerShell in the Exchange Management Shell: ``command`` is an
argument list that receives the script on its standard input, for example
``["ssh", "administrator@ex1.example.com", "powershell", "-NoProfile", "-Command", "-"]``
(with the Exchange snap-in loaded by that account's profile or a wrapper).
Options: ``command`` (required), ``pfx_password_file`` or ``pfx_password_env``
(required: the PFX password, never inline), ``cert_dir`` (required: where the
.pfx and .ps1 are kept on the certmgr host, both 0600), ``services`` (default
``["SMTP"]``), plus the shared host options.

The PFX holds key, leaf and chain, encrypted with PBES1 SHA-1 + 3DES and a
SHA-1 MAC: the legacy-compatible choice every SChannel/Windows Server version
imports (AES/PBES2 PFX files are refused by older Windows).  The script embeds
the PFX in base64, so no file transfer is needed::

    Import-ExchangeCertificate -FileData <bytes> -Password <secure string> -PrivateKeyExportable $false
    Enable-ExchangeCertificate -Thumbprint <SHA-1 of the leaf> -Services SMTP -Force

Rollback runs the previous script again (re-import is harmless, enable switches
back).  Exchange cannot run on Linux test machines: the tests read the PFX back
with ``cryptography`` and check the script's content, and run ``command`` as a
stand-in that records its input.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from typing import Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from certmgr.errors import ConfigError
from certmgr.interfaces import CertBundle, DeployRequest, Options, ProviderEnv
from providers.deployers.base import (
    Command,
    FileSpec,
    HostOptions,
    MailDeployer,
    cert_path,
    read_host_options,
    split_bundles,
)

_SERVICES = ("SMTP", "IMAP", "POP", "IIS", "UM", "UMCallRouter")


def ps_quote(text: str) -> str:
    """A PowerShell single-quoted string literal ('' escapes a quote)."""
    return "'" + text.replace("'", "''") + "'"


def make_pfx(bundle: CertBundle, password: str) -> bytes:
    key = serialization.load_pem_private_key(bundle.key_pem, password=None)
    cert = x509.load_pem_x509_certificate(bundle.cert_pem)
    chain = x509.load_pem_x509_certificates(bundle.chain_pem) if bundle.chain_pem.strip() else []
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(50000)
        .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
        .hmac_hash(hashes.SHA1())
        .build(password.encode())
    )
    return pkcs12.serialize_key_and_certificates(
        bundle.hostname.encode(), key, cert, chain, encryption  # type: ignore[arg-type]
    )


def thumbprint(bundle: CertBundle) -> str:
    """Exchange names certificates by the SHA-1 of the leaf DER, upper-case hex."""
    der = x509.load_pem_x509_certificate(bundle.cert_pem).public_bytes(serialization.Encoding.DER)
    return hashlib.sha1(der).hexdigest().upper()


def make_script(pfx: bytes, password: str, thumb: str, services: Sequence[str]) -> str:
    return "\n".join([
        "$ErrorActionPreference = 'Stop'",
        f"$pfx = [System.Convert]::FromBase64String({ps_quote(base64.b64encode(pfx).decode())})",
        f"$password = ConvertTo-SecureString -String {ps_quote(password)} -AsPlainText -Force",
        "Import-ExchangeCertificate -FileData $pfx -Password $password -PrivateKeyExportable $false | Out-Null",
        f"Enable-ExchangeCertificate -Thumbprint {thumb} -Services {','.join(services)} -Force",
        "",
    ])


class ExchangeDeployer(MailDeployer):
    description = "Exchange: PFX + Import-/Enable-ExchangeCertificate script run through your command"
    kind = "exchange"

    def __init__(self, name: str, hosting: HostOptions, *, command: Sequence[str], password: str,
                 cert_dir: str, services: Sequence[str]) -> None:
        super().__init__(name, hosting)
        self.command = tuple(command)
        self.password = password
        self.cert_dir = cert_dir
        self.services = tuple(services)

    @classmethod
    def from_config(cls, name: str, options: Options, env: ProviderEnv) -> Self:
        services = options.str_list("services", ["SMTP"])
        for s in services:
            if s not in _SERVICES:
                raise ConfigError(f"unknown Exchange service {s!r} (known: {', '.join(_SERVICES)})",
                                  key="services")
        deployer = cls(name, read_host_options(options), command=options.command("command"),
                       password=options.secret("pfx_password") or "", cert_dir=options.str("cert_dir"),
                       services=services)
        options.finish()
        return deployer

    def several_hostnames(self) -> str | None:
        return ("Exchange serves the one certificate enabled for the SMTP service (chosen by connector FQDN, "
                "not SNI)")

    def where(self) -> str:
        return f"exchange:{self.command[0]}"

    def layout(self, request: DeployRequest) -> list[FileSpec]:
        split_bundles(request)
        files: list[FileSpec] = []
        for b in request.bundles:
            pfx = make_pfx(b, self.password)
            script = make_script(pfx, self.password, thumbprint(b), self.services)
            files.append(FileSpec(cert_path(self.cert_dir, b.hostname, b.key_alg, "pfx"), pfx, True))
            files.append(FileSpec(cert_path(self.cert_dir, b.hostname, b.key_alg, "ps1"), script.encode(), True))
        return files

    def reload(self, paths: Sequence[str]) -> list[Command]:
        commands = []
        for path in (p for p in paths if p.endswith(".ps1")):
            script = self.host.read(path)
            if script is not None:  # None: rolling back a first deployment, nothing to re-enable
                commands.append(Command(self.command, stdin=script))
        return commands
