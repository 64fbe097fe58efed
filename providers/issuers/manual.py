"""Manual issuer: a public CA without ACME.

Needs nothing but a name.  certmgr keeps the key and makes the CSR
(``certmgr csr HOST``); a person sends it to the CA and brings the certificate
back with ``certmgr import HOST FILE``, which checks it before anything is stored.
Certificates from this issuer are never renewed automatically: they drive reminders.
"""

from __future__ import annotations

from typing import Self

from certmgr.errors import PermanentError
from certmgr.interfaces import CertRequest, IssueContext, IssuedCertificate, Options, ProviderEnv


class ManualIssuer:
    description = "public CA without ACME: `certmgr csr` to export the CSR, `certmgr import` to bring the certificate"
    automatic = False

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    def from_config(cls, name: str, options: Options, env: ProviderEnv) -> Self:
        options.finish()
        return cls(name)

    def issue(self, request: CertRequest, ctx: IssueContext) -> IssuedCertificate:
        raise PermanentError(
            f"{request.hostname}: issuer {self.name!r} is a CA without ACME; run "
            f"`certmgr csr {request.hostname}`, send the CSR to the CA, then "
            f"`certmgr import {request.hostname} FILE`"
        )
