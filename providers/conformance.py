"""Every built-in provider class is the protocol it is registered for, as mypy sees it.

The typed assignments below are the Python form of lego's ``var _ challenge.Provider =
(*DNSProvider)(nil)``: ``mypy`` fails when a class stops satisfying its protocol or an
optional capability it claims.  Nothing imports this module at run time;
``tests/unit/test_provider_protocols.py`` checks every registered entry point against
these lists and against the protocols themselves.
"""

from __future__ import annotations

from certmgr.dns.publisher import DnsPublisher
from certmgr.interfaces import (
    AutoRenewing,
    ChallengeSolver,
    Committing,
    Deployer,
    Issuer,
    MtaInstance,
    Notifier,
    RenewalInfoSource,
    Revoker,
    ServesDocuments,
    SeveralHostnames,
)
from providers.challenges.exec import ExecSolver
from providers.challenges.http01 import Http01Solver
from providers.challenges.rfc2136 import Rfc2136Solver
from providers.deployers.dovecot import DovecotDeployer
from providers.deployers.exchange import ExchangeDeployer
from providers.deployers.exec import ExecDeployer
from providers.deployers.exim import EximDeployer
from providers.deployers.postfix import PostfixDeployer
from providers.deployers.webroot import WebrootDeployer
from providers.dns.rfc2136 import Rfc2136Publisher
from providers.issuers.acme import AcmeIssuer
from providers.issuers.manual import ManualIssuer
from providers.notifiers.email import EmailNotifier
from providers.notifiers.webhook import WebhookNotifier

#: entry-point group -> the built-in classes registered in it
ISSUERS: tuple[type[Issuer], ...] = (AcmeIssuer, ManualIssuer)
CHALLENGES: tuple[type[ChallengeSolver], ...] = (Http01Solver, Rfc2136Solver, ExecSolver)
DEPLOYERS: tuple[type[Deployer], ...] = (PostfixDeployer, EximDeployer, DovecotDeployer, ExecDeployer,
                                         ExchangeDeployer, WebrootDeployer)
NOTIFIERS: tuple[type[Notifier], ...] = (EmailNotifier, WebhookNotifier)
DNS_PUBLISHERS: tuple[type[DnsPublisher], ...] = (Rfc2136Publisher,)

#: optional capabilities the built-ins claim
AUTO_RENEWING: tuple[type[AutoRenewing], ...] = (AcmeIssuer, ManualIssuer)
REVOKERS: tuple[type[Revoker], ...] = (AcmeIssuer,)
RENEWAL_INFO: tuple[type[RenewalInfoSource], ...] = (AcmeIssuer,)
SEVERAL_HOSTNAMES: tuple[type[SeveralHostnames], ...] = (PostfixDeployer, EximDeployer, DovecotDeployer,
                                                         ExecDeployer, ExchangeDeployer, WebrootDeployer)
SERVES_DOCUMENTS: tuple[type[ServesDocuments], ...] = (WebrootDeployer,)
MTA_INSTANCES: tuple[type[MtaInstance], ...] = (PostfixDeployer, EximDeployer, DovecotDeployer, ExecDeployer,
                                                ExchangeDeployer, WebrootDeployer)
COMMITTING: tuple[type[Committing], ...] = (PostfixDeployer, EximDeployer, DovecotDeployer, ExecDeployer,
                                           ExchangeDeployer, WebrootDeployer)
