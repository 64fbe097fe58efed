"""The contracts between the core and its providers.

Providers (issuers, challenge solvers, deployers, notifiers) import this module
and :mod:`certmgr.errors` and nothing else from the core.  They get values in
and give values out; they never open the database.

Every provider class is registered under an entry-point group
(``certmgr.issuers``, ``certmgr.challenges``, ``certmgr.deployers``,
``certmgr.notifiers``) and is built by the core through its classmethod::

    @classmethod
    def from_config(cls, name: str, options: Options, env: ProviderEnv) -> Self

``options`` is the provider's own table of the config file (core keys such as
``type`` already removed).  ``from_config`` validates it and raises
:class:`~certmgr.errors.ConfigError` naming the key; the core adds file and
table.  A class attribute ``description`` (one line) is shown by
``certmgr providers``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from certmgr.options import Options as Options  # providers import it from here


@dataclass(frozen=True)
class ProviderEnv:
    """What the core hands to every provider constructor."""

    config_dir: Path
    state_dir: Path
    #: extra trust anchors (PEM) from ``[certmgr] trust``, or None
    trust_file: Path | None = None
    #: builds a challenge solver from a ``challenge = {...}`` table (issuers use it)
    make_challenge: Callable[[Options], ChallengeSolver] | None = None


# --------------------------------------------------------------------------
# Issuers
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class CertRequest:
    """One certificate to obtain: the core made the key and the CSR."""

    hostname: str
    names: tuple[str, ...]  # every SAN, hostname first
    key_type: str  # "rsa-2048", "ecdsa-p256", ...
    csr_pem: bytes
    #: the certificate (PEM) this one replaces, for an issuer that says so to the CA
    #: (ACME ARI "replaces", RFC 9773)
    replaces_pem: bytes | None = None


@dataclass(frozen=True)
class IssuedCertificate:
    fullchain_pem: bytes  # leaf first, then intermediates
    order_url: str | None = None
    #: the issuer account that ordered it (ACME), recorded on the version
    account_uri: str | None = None


@dataclass(frozen=True)
class AccountRecord:
    """An issuer account (ACME).  ``key_pem`` is private: the core keeps it in a
    0600 file and never logs it."""

    issuer: str
    directory: str
    key_pem: bytes
    uri: str | None
    contact: tuple[str, ...] = ()


@dataclass
class IssueContext:
    """Per-request hooks the core gives an issuer."""

    hostname: str
    load_account: Callable[[], AccountRecord | None]
    save_account: Callable[[AccountRecord], None]
    #: record a lifecycle step before taking the next ("order_created", "challenge_answered", ...)
    record_step: Callable[[str, Mapping[str, str]], None] = lambda step, detail: None
    #: an order left pending by an interrupted run, to reuse when still usable
    resume_order_url: str | None = None
    #: seconds the whole issuance may take
    timeout: float = 300.0


@runtime_checkable
class Issuer(Protocol):
    def issue(self, request: CertRequest, ctx: IssueContext) -> IssuedCertificate:
        """Obtain a certificate for ``request``; raise RetryableError/PermanentError."""
        ...


@runtime_checkable
class Revoker(Protocol):
    def revoke(self, cert_pem: bytes, reason: int, ctx: IssueContext) -> None: ...


@dataclass(frozen=True)
class RenewalWindow:
    start: datetime
    end: datetime
    #: when to ask again (Retry-After of the renewalInfo response)
    retry_after: datetime | None = None
    explanation_url: str | None = None


@runtime_checkable
class RenewalInfoSource(Protocol):
    """Optional: the CA says when to renew (ACME Renewal Information, RFC 9773)."""

    def renewal_info(self, cert_pem: bytes, ctx: IssueContext) -> RenewalWindow | None:
        """None when the CA offers no renewal information."""
        ...


@runtime_checkable
class Preparing(Protocol):
    """Optional for issuers: set up what all their issuances share (an ACME directory and
    account) ahead of the first one, while the core generates the other keys.  Idempotent and
    safe beside running issuances; it raises what ``issue`` would raise for the same step."""

    def prepare(self, ctx: IssueContext) -> None: ...


@runtime_checkable
class AutoRenewing(Protocol):
    """Optional for issuers: whether they renew without a person (ACME does; the manual
    issuer says ``automatic = False``).  An issuer that does not say is automatic."""

    automatic: bool


def renews_automatically(issuer: Issuer) -> bool:
    """Does ``issuer`` renew without a person?  (:class:`AutoRenewing`; default yes.)"""
    return bool(issuer.automatic) if isinstance(issuer, AutoRenewing) else True


# --------------------------------------------------------------------------
# Challenges
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ChallengeTask:
    domain: str
    token: str
    key_authorization: str
    #: base64url(SHA-256(key_authorization)): the TXT value for dns-01
    dns_value: str


@runtime_checkable
class ChallengeSolver(Protocol):
    challenge_type: str  # "http-01" or "dns-01"

    def present(self, task: ChallengeTask) -> None:
        """Publish the response; return only when the CA can see it."""
        ...

    def cleanup(self, task: ChallengeTask) -> None: ...


@runtime_checkable
class Closeable(Protocol):
    def close(self) -> None: ...


# --------------------------------------------------------------------------
# Deployers
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class CertBundle:
    """One certificate with its key, as installed into an MTA (one per algorithm)."""

    hostname: str
    names: tuple[str, ...]
    key_type: str  # "rsa-2048", ...
    key_alg: str  # "rsa" | "ecdsa"
    key_pem: bytes
    cert_pem: bytes  # leaf only
    chain_pem: bytes  # intermediates, leaf's issuer first
    sha256: str  # hex SHA-256 of the leaf DER
    serial: str  # hex
    not_after: datetime

    @property
    def fullchain_pem(self) -> bytes:
        return self.cert_pem + self.chain_pem


#: protocol names a probe target may be given: (protocol, implicit TLS)
PROTOCOLS = {"smtp": ("smtp", False), "smtps": ("smtp", True), "imap": ("imap", False),
             "imaps": ("imap", True), "pop3": ("pop3", False), "pop3s": ("pop3", True)}
#: the protocol a port speaks when the config does not say; any other port is SMTP
PORT_PROTOCOLS = {25: "smtp", 587: "smtp", 465: "smtps", 143: "imap", 993: "imaps", 110: "pop3", 995: "pop3s"}


def protocol_for(port: int, name: str | None = None) -> tuple[str, bool]:
    """(protocol, implicit TLS) of a target: ``name`` (a key of :data:`PROTOCOLS`) or its port's."""
    return PROTOCOLS[name or PORT_PROTOCOLS.get(port, "smtp")]


@dataclass(frozen=True)
class VerifyTarget:
    host: str
    port: int
    protocol: str = "smtp"  # "smtp" | "imap" | "pop3"
    implicit_tls: bool = False
    #: the SNI name the probe sends: None the request's hostname, "" none at all (the
    #: server's default certificate, what most SMTP senders get)
    servername: str | None = None


@dataclass(frozen=True)
class HostBundles:
    """One hostname of a deploy target that serves several (SNI), with its certificates."""

    hostname: str
    bundles: tuple[CertBundle, ...]  # one per key algorithm
    #: where this hostname's MTA is probed (its [[mta]] smtp setting)
    verify: VerifyTarget

    @property
    def names(self) -> tuple[str, ...]:
        """Every name the certificates cover, hostname first: the SNI names that select them."""
        return tuple(dict.fromkeys([self.hostname, *(n for b in self.bundles for n in b.names)]))


@dataclass(frozen=True)
class DeployRequest:
    """What to install on one deploy target.  ``hostname``/``bundles``/``verify`` are the
    primary's: its certificate is the default, served to clients that send no SNI."""

    hostname: str
    bundles: tuple[CertBundle, ...]
    #: where the MTA is probed (the [[mta]] smtp setting), for deployers with no own
    verify: VerifyTarget
    #: every hostname the target serves, primary first, when it serves several (SNI);
    #: empty for the usual one hostname per target
    hosts: tuple[HostBundles, ...] = ()
    #: files a web target serves beside the certificate, by URL path (the MTA-STS policy at
    #: ``/.well-known/mta-sts.txt``); only a :class:`ServesDocuments` deployer is given any
    documents: tuple[tuple[str, bytes], ...] = ()

    @property
    def all_hosts(self) -> tuple[HostBundles, ...]:
        return self.hosts or (HostBundles(self.hostname, self.bundles, self.verify),)


@dataclass(frozen=True)
class Installed:
    """What a deployer changed, enough to undo it."""

    target: str  # e.g. "postfix:/etc/postfix"
    verify: tuple[VerifyTarget, ...]
    backup: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class SeveralHostnames(Protocol):
    """A deployer that can serve several hostnames from one MTA instance, choosing the
    certificate by SNI (a request with ``hosts``).  A deployer that is not one is refused
    as a target shared by several [[mta]] tables."""

    def several_hostnames(self) -> str | None:
        """None when this target (as configured) can; otherwise why not, naming the option."""
        ...


@runtime_checkable
class Committing(Protocol):
    """A deployer that keeps state about a deployment until it is settled: the core calls
    :meth:`commit` once the new certificate is verified as served (a deployment cut short
    before that is then known as unverified when it is run again)."""

    def commit(self, installed: Installed) -> None: ...


@runtime_checkable
class ChecksSetup(Protocol):
    """A deployer that can tell, without changing anything, what on this machine keeps it
    from working (a config directory that does not exist, a command path that is not a
    program).  ``certmgr validate`` reports each as an error at the option that names it."""

    def setup_problems(self) -> list[tuple[str, str]]:
        """(option key, what is wrong and what to do) for each problem; empty when none."""
        ...


@runtime_checkable
class MtaInstance(Protocol):
    """A deployer that knows which MTA instance it reloads.  Two deploy tables naming one
    instance would undo each other's files: `validate` refuses them."""

    def instance(self) -> tuple[str, str] | None:
        """(what identifies the instance, e.g. "postfix /etc/postfix on local"; the option
        that names it), or None when unknown."""
        ...


@runtime_checkable
class ServesDocuments(Protocol):
    """A deployer for a web server: it installs ``DeployRequest.documents`` with the
    certificate, in the same backup/write/reload/undo unit (the ``web`` target of
    ``[mta_sts."domain"]``).  Other deployers are refused there by `validate`."""

    def document_root(self) -> str:
        """Where the documents go, for messages (e.g. "/srv/mta-sts on local")."""
        ...


@runtime_checkable
class Deployer(Protocol):
    def install(self, request: DeployRequest) -> Installed:
        """Install atomically, test the MTA config, reload.  On failure restore the
        previous files, reload, and raise DeployError."""
        ...

    def rollback(self, installed: Installed) -> None:
        """Put back what ``install`` replaced and reload."""
        ...


# --------------------------------------------------------------------------
# Notifiers
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str  # e.g. "text/calendar; method=REQUEST"
    data: bytes
    #: set for an image the HTML part shows inline as ``<img src="cid:CONTENT_ID">`` (no angle
    #: brackets): a mail notifier sends it as a related part of the HTML, others may drop it
    content_id: str | None = None


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    html: str | None = None
    severity: str = "info"  # info | warning | critical
    hostname: str | None = None
    attachments: tuple[Attachment, ...] = ()
    #: structured facts (for JSON webhooks)
    facts: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Notifier(Protocol):
    def send(self, message: Message) -> None:
        """Deliver or raise NotifyError (the core keeps the message queued)."""
        ...


@runtime_checkable
class HasDestinations(Protocol):
    """Optional for notifiers: where a message ends up (``mailto:a@b``, a URL), so that
    two notifiers of one MTA reaching the same people do not send them everything twice."""

    @property
    def destinations(self) -> frozenset[str]: ...
