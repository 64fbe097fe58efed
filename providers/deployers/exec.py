"""Exec: write the certificate files, then run a command of yours for each certificate.

For anything without a built-in deployer (a load balancer API, a config
management push).  Options: ``command`` (an argument list, required; run
without a shell), ``cert_dir`` (required), ``verify`` (default true: probe the
MTA's smtp target afterwards; false when the command deploys somewhere
certmgr cannot probe), ``group``, plus the shared host options.

Per key algorithm the files ``<cert_dir>/<hostname>.<alg>.{key,crt,chain.pem,fullchain.pem}``
are written first; the command then runs once per certificate with
``CERTMGR_HOSTNAME``, ``CERTMGR_NAMES`` (space-separated), ``CERTMGR_CERT``,
``CERTMGR_KEY``, ``CERTMGR_CHAIN``, ``CERTMGR_FULLCHAIN``, ``CERTMGR_KEY_TYPE``
(``rsa-2048``…), ``CERTMGR_SERIAL`` (hex), ``CERTMGR_SHA256`` (hex of the leaf
DER) and ``CERTMGR_NOT_AFTER`` (ISO 8601 UTC).  A non-zero exit is a failed
deployment: the previous files are restored and the command runs again for them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Self

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from certmgr.errors import DeployError
from certmgr.interfaces import DeployRequest, Options, ProviderEnv, VerifyTarget
from providers.deployers.base import (
    Command,
    FileSpec,
    HostOptions,
    MailDeployer,
    cert_path,
    read_host_options,
    split_bundles,
)
from providers.deployers.setup import Created, Run


def key_type_of(cert: x509.Certificate) -> str:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return f"rsa-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ecdsa-p{key.curve.key_size}"
    return "unknown"


class ExecDeployer(MailDeployer):
    description = "Exec: write cert/key/chain files and run your command with CERTMGR_* variables"
    kind = "exec"

    def __init__(self, name: str, hosting: HostOptions, *, command: Sequence[str], cert_dir: str,
                 verify: bool) -> None:
        super().__init__(name, hosting)
        self.command = tuple(command)
        self.cert_dir = cert_dir
        self.verify = verify

    @classmethod
    def from_config(cls, name: str, options: Options, env: ProviderEnv) -> Self:
        deployer = cls(name, read_host_options(options), command=options.command("command"),
                       cert_dir=options.str("cert_dir"), verify=options.bool("verify", True))
        options.finish()
        return deployer

    def several_hostnames(self) -> str | None:
        return ("it runs your command once per certificate and cannot tell the MTA which certificate "
                "goes with which SNI name")

    def where(self) -> str:
        return f"exec:{self.command[0]}"

    def created_dirs(self) -> list[Created]:
        return [("cert_dir", self.cert_dir)]

    def setup_commands(self) -> list[Run]:
        return [("command", self.command)]

    def layout(self, request: DeployRequest) -> list[FileSpec]:
        split_bundles(request)
        files: list[FileSpec] = []
        for b in request.bundles:
            def path(suffix: str, alg: str = b.key_alg) -> str:
                return cert_path(self.cert_dir, request.hostname, alg, suffix)

            # the certificate first: reload() finds each certificate's files from its .crt
            files += [FileSpec(path("crt"), b.cert_pem, False), FileSpec(path("key"), b.key_pem, True),
                      FileSpec(path("chain.pem"), b.chain_pem, False),
                      FileSpec(path("fullchain.pem"), b.fullchain_pem, False)]
        return files

    def reload(self, paths: Sequence[str]) -> list[Command]:
        commands: list[Command] = []
        for crt in (p for p in paths if p.endswith(".crt")):
            pem = self.host.read(crt)
            if pem is None:  # a rollback of a first deployment: nothing to announce
                continue
            try:
                cert = x509.load_pem_x509_certificate(pem)
            except ValueError as e:
                raise DeployError(f"{crt} does not hold a PEM certificate: {e}") from e
            stem = crt[: -len(".crt")]
            hostname = PurePosixPath(stem).name.rsplit(".", 1)[0]
            try:
                names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                sans = " ".join(names.get_values_for_type(x509.DNSName))
            except x509.ExtensionNotFound:
                sans = hostname
            env = {
                "CERTMGR_HOSTNAME": hostname, "CERTMGR_NAMES": sans, "CERTMGR_CERT": crt,
                "CERTMGR_KEY": stem + ".key", "CERTMGR_CHAIN": stem + ".chain.pem",
                "CERTMGR_FULLCHAIN": stem + ".fullchain.pem", "CERTMGR_KEY_TYPE": key_type_of(cert),
                "CERTMGR_SERIAL": format(cert.serial_number, "x"),
                "CERTMGR_SHA256": hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest(),
                "CERTMGR_NOT_AFTER": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            commands.append(Command(self.command, env))
        return commands

    def verify_targets(self, request: DeployRequest) -> tuple[VerifyTarget, ...]:
        return (request.verify,) if self.verify else ()
