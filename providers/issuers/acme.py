"""ACME issuer (RFC 8555) with EAB, profiles, ARI (RFC 9773) and revocation.

Needs: the ``acme`` and ``josepy`` libraries, network access to the CA's ``directory``,
and a challenge solver built from the issuer's ``challenge`` table.

Config ([issuer.NAME], type = "acme"): ``directory`` (URL, required), ``contact`` (list of
"mailto:..."), ``ca_bundle`` (TLS trust for the CA's own server), ``eab_kid`` +
``eab_hmac_key_file``/``eab_hmac_key_env``, ``profile``, ``challenge`` (table), ``timeout``
(seconds, default 300).

One instance serves many concurrent ``issue()`` calls: the directory and the account are
shared (each fetched/registered once, under a lock); every call has its own network, since
nonces belong to one connection pool.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import re
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urlsplit

import requests
from acme import client as acme_client
from acme import errors as acme_errors
from acme import messages
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from josepy import errors as jose_errors
from josepy import jwa, jwk

from certmgr.errors import CertmgrError, ConfigError, IssuanceError, PermanentError
from certmgr.interfaces import (
    AccountRecord,
    CertRequest,
    ChallengeSolver,
    Closeable,
    IssueContext,
    IssuedCertificate,
    Options,
    ProviderEnv,
    RenewalWindow,
)
from providers.issuers.acme_net import (
    RetryingNetwork,
    ari_cert_id,
    host_of,
    map_acme_error,
    retry_after_seconds,
)
from providers.issuers.acme_order import Issuance

log = logging.getLogger(__name__)

USER_AGENT = "certmgr (acme-python)"
#: per HTTP request; the whole issuance is bounded by ``timeout``
REQUEST_TIMEOUT = 30

_ACME_ERRORS = (
    messages.Error,
    acme_errors.Error,
    requests.RequestException,
    jose_errors.DeserializationError,
)


@dataclass(frozen=True)
class _Account:
    key: jwk.JWK
    alg: jwa.JWASignature
    regr: messages.RegistrationResource


def _load_key(key_pem: bytes, issuer: str) -> tuple[jwk.JWK, jwa.JWASignature]:
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        # never chain the cause: it may quote bytes of the key
        raise PermanentError(
            f"the stored ACME account key of [issuer.{issuer}] is damaged or not a PEM key; move the "
            "file under accounts/ in the state directory aside so certmgr registers a new account"
        ) from None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        alg = {256: jwa.ES256, 384: jwa.ES384, 521: jwa.ES512}[key.curve.key_size]
        return jwk.JWKEC(key=key), alg
    if isinstance(key, rsa.RSAPrivateKey):
        return jwk.JWKRSA(key=key), jwa.RS256
    raise PermanentError("the stored ACME account key is neither EC nor RSA; remove it to register anew")


class AcmeIssuer:
    """Obtains certificates from an ACME CA."""

    description = "ACME CA (Let's Encrypt, ZeroSSL, ...): HTTP-01/DNS-01, EAB, profiles, ARI, revocation"
    automatic = True

    def __init__(
        self,
        name: str,
        *,
        directory: str,
        solver: ChallengeSolver,
        contact: tuple[str, ...] = (),
        ca_bundle: str | None = None,
        eab_kid: str | None = None,
        eab_hmac_key: str | None = None,
        profile: str | None = None,
        timeout: float = 300.0,
    ) -> None:
        self.name = name
        self.directory_url = directory
        self.solver = solver
        self.contact = contact
        self.ca_bundle = ca_bundle
        self.eab_kid = eab_kid
        self.eab_hmac_key = eab_hmac_key
        self.profile = profile
        self.timeout = timeout
        self.host = host_of(directory)
        self._lock = threading.Lock()
        self._account_lock = threading.Lock()
        self._directory: messages.Directory | None = None
        self._account: _Account | None = None
        # idle connections to the CA, kept across issuances (see _connection)
        self._idle: list[tuple[_Account | None, RetryingNetwork]] = []

    @classmethod
    def from_config(cls, name: str, options: Options, env: ProviderEnv) -> Self:
        directory = options.str("directory")
        if not directory.startswith(("https://", "http://")):
            raise ConfigError(
                f"must be an http(s) URL, got {directory!r}", table=options.where, key="directory"
            )
        _check_url(directory, options)
        contact = options.str_list("contact", [])
        for c in contact:
            if not c.startswith("mailto:"):
                raise ConfigError(
                    f"entries must start with mailto:, got {c!r}", table=options.where, key="contact"
                )
            if not re.fullmatch(r"mailto:[^@\s,<>]+@[A-Za-z0-9.-]+", c):
                # the CA refuses it when the account is made (invalidContact): say so now
                raise ConfigError(f"{c!r} is not mailto: and one address (user@domain)",
                                  table=options.where, key="contact")
        ca_bundle = options.path("ca_bundle", None, must_exist=True)
        if ca_bundle is not None:
            try:
                ssl.create_default_context(cafile=str(ca_bundle))
            except (ssl.SSLError, OSError, ValueError) as e:
                raise ConfigError(f"{ca_bundle} is not a PEM file of CA certificates ({e})",
                                  table=options.where, key="ca_bundle") from e
        eab_kid = options.str("eab_kid", None)
        eab_hmac_key = options.secret("eab_hmac_key", required=eab_kid is not None)
        if eab_hmac_key is not None and eab_kid is None:
            raise ConfigError(
                "is set but eab_kid is not; set both or neither", table=options.where, key="eab_hmac_key_file"
            )
        profile = options.str("profile", None)
        timeout = options.float("timeout", 300.0, min=1.0)
        challenge = options.table("challenge")
        options.finish()
        if env.make_challenge is None:
            raise ConfigError("cannot build challenge solvers here", table=options.where, key="challenge")
        solver = env.make_challenge(challenge)
        return cls(
            name,
            directory=directory,
            solver=solver,
            contact=tuple(contact),
            ca_bundle=str(ca_bundle) if ca_bundle is not None else None,
            eab_kid=eab_kid,
            eab_hmac_key=eab_hmac_key,
            profile=profile,
            timeout=timeout,
        )

    # -- shared state -----------------------------------------------------

    def _network(
        self, account: _Account | None, key: jwk.JWK | None = None, alg: jwa.JWASignature = jwa.ES256
    ) -> RetryingNetwork:
        net = RetryingNetwork(
            key=account.key if account else key,
            account=account.regr if account else None,
            alg=account.alg if account else alg,
            # requests takes a CA file path as well as a bool here
            verify_ssl=self.ca_bundle if self.ca_bundle else True,
            user_agent=USER_AGENT,
            timeout=REQUEST_TIMEOUT,
        )
        return net

    @contextlib.contextmanager
    def _connection(self, account: _Account | None) -> Iterator[RetryingNetwork]:
        """A network to the CA for ``account``, used by one thread at a time and kept for the
        next request: its TLS connection and the nonces the CA handed out are reused, instead
        of a handshake and a newNonce round trip per certificate."""
        with self._lock:
            net = next((n for a, n in self._idle if a is account), None)
            if net is not None:
                self._idle = [(a, n) for a, n in self._idle if n is not net]
        if net is None:
            net = self._network(account)
        try:
            yield net
        finally:
            with self._lock:
                if account is None or account is self._account:  # not one of a forgotten account
                    self._idle.append((account, net))
                else:
                    net.session.close()

    def _get_directory(self, hostname: str) -> messages.Directory:
        with self._lock:
            if self._directory is not None:
                return self._directory
            net = self._network(None)
            try:
                directory = acme_client.ClientV2.get_directory(self.directory_url, net)
            except _ACME_ERRORS as e:
                raise map_acme_error(
                    e,
                    host=self.host,
                    hostname=hostname,
                    what="fetching the directory",
                    response=net.last_response,
                ) from e
            if self.profile is not None:
                offered = dict(directory.meta.profiles or {})
                if self.profile not in offered:
                    names = ", ".join(sorted(offered)) or "none"
                    raise PermanentError(
                        f"ACME server {self.host} does not offer profile {self.profile!r} "
                        f"(offered: {names}); change `profile` in [issuer.{self.name}]"
                    )
            self._directory = directory
            return directory

    def _has_ari(self, directory: messages.Directory) -> bool:
        try:
            directory["renewalInfo"]
        except KeyError:
            return False
        return True

    def _register(self, key: jwk.JWK, alg: jwa.JWASignature, ctx: IssueContext) -> _Account:
        directory = self._get_directory(ctx.hostname)
        net = self._network(None, key, alg)
        client = acme_client.ClientV2(directory, net)
        eab = None
        if self.eab_kid and self.eab_hmac_key:
            eab = messages.ExternalAccountBinding.from_data(
                account_public_key=key.public_key(),
                kid=self.eab_kid,
                hmac_key=self.eab_hmac_key,
                directory=directory,
            )
        elif client.external_account_required():
            raise PermanentError(
                f"ACME server {self.host} requires external account binding: set eab_kid and "
                f"eab_hmac_key_file (or eab_hmac_key_env) in [issuer.{self.name}] "
                "with the values the CA gave you"
            )
        reg = messages.NewRegistration(
            contact=self.contact, terms_of_service_agreed=True, external_account_binding=eab
        )
        try:
            regr = client.new_account(reg)
        except acme_errors.ConflictError as e:
            # the key is already registered: the CA tells us the account URL
            regr = messages.RegistrationResource(uri=str(e.location), body=messages.Registration())
        except _ACME_ERRORS as e:
            raise map_acme_error(
                e,
                host=self.host,
                hostname=ctx.hostname,
                what="registering the account",
                response=net.last_response,
            ) from e
        key_pem = key.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        ctx.save_account(
            AccountRecord(
                issuer=self.name,
                directory=self.directory_url,
                key_pem=key_pem,
                uri=regr.uri,
                contact=self.contact,
            )
        )
        log.info("%s: registered ACME account %s", self.host, regr.uri)
        return _Account(key, alg, regr)

    def _get_account(self, ctx: IssueContext) -> _Account:
        with self._account_lock:
            if self._account is not None:
                return self._account
            record = ctx.load_account()
            if record is not None and record.directory == self.directory_url:
                key, alg = _load_key(record.key_pem, self.name)
                if record.uri:
                    regr = messages.RegistrationResource(uri=record.uri, body=messages.Registration())
                    self._account = _Account(key, alg, regr)
                else:
                    self._account = self._register(key, alg, ctx)
            else:
                new_key = jwk.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
                self._account = self._register(new_key, jwa.ES256, ctx)
            return self._account

    def _reregister(self, stale: _Account, ctx: IssueContext) -> _Account:
        """The CA forgot the account (a test CA restarted, or it was deactivated):
        register the same key again, once for all threads that noticed."""
        with self._account_lock:
            if self._account is not None and self._account is not stale:
                return self._account
            log.warning(
                "%s: ACME account %s is unknown to the CA; registering again", self.host, stale.regr.uri
            )
            self._account = self._register(stale.key, stale.alg, ctx)
            return self._account

    # -- Issuer -------------------------------------------------------------

    def prepare(self, ctx: IssueContext) -> None:
        """Fetch the directory and load or register the account (Preparing), so the first
        issuance does not wait for them after its key is made."""
        self._get_directory(ctx.hostname)
        self._get_account(ctx)

    def issue(self, request: CertRequest, ctx: IssueContext) -> IssuedCertificate:
        deadline = time.monotonic() + min(self.timeout, ctx.timeout)
        directory = self._get_directory(request.hostname)
        account = self._get_account(ctx)
        resume = ctx.resume_order_url
        for attempt in (1, 2):
            with self._connection(account) as net:
                outcome = self._issue_once(directory, account, net, request, ctx, deadline, resume, attempt)
            if outcome is not None:
                return outcome
            account = self._reregister(account, ctx)
            resume = None  # orders belonged to the forgotten account
        raise AssertionError("unreachable")

    def _issue_once(self, directory: messages.Directory, account: _Account, net: RetryingNetwork,
                    request: CertRequest, ctx: IssueContext, deadline: float, resume: str | None,
                    attempt: int) -> IssuedCertificate | None:
        """One issuance; None when the CA forgot the account on the first attempt."""
        client = acme_client.ClientV2(directory, net)
        run = Issuance(
            client,
            account.key,
            self.solver,
            request,
            ctx,
            host=self.host,
            deadline=deadline,
            profile=self.profile,
            send_replaces=self._has_ari(directory),
            resume_order_url=resume,
        )
        try:
            return dataclasses.replace(run.run(), account_uri=account.regr.uri)
        except messages.Error as e:
            if e.code == "accountDoesNotExist" and attempt == 1:
                return None
            raise map_acme_error(
                e, host=self.host, hostname=request.hostname, what=run.what, response=net.last_response
            ) from e
        except CertmgrError:
            raise
        except (*_ACME_ERRORS, ValueError) as e:
            raise map_acme_error(
                e, host=self.host, hostname=request.hostname, what=run.what, response=net.last_response
            ) from e

    # -- Revoker ------------------------------------------------------------

    def revoke(self, cert_pem: bytes, reason: int, ctx: IssueContext) -> None:
        cert = x509.load_pem_x509_certificate(cert_pem)
        directory = self._get_directory(ctx.hostname)
        account = self._get_account(ctx)
        for attempt in (1, 2):
            net = self._network(account)
            try:
                acme_client.ClientV2(directory, net).revoke(cert, reason)
                return
            except _ACME_ERRORS as e:
                if isinstance(e, messages.Error) and e.code == "accountDoesNotExist" and attempt == 1:
                    account = self._reregister(account, ctx)
                    continue
                raise map_acme_error(
                    e,
                    host=self.host,
                    hostname=ctx.hostname,
                    what="revoking the certificate",
                    response=net.last_response,
                ) from e

    # -- RenewalInfoSource --------------------------------------------------

    def renewal_info(self, cert_pem: bytes, ctx: IssueContext) -> RenewalWindow | None:
        directory = self._get_directory(ctx.hostname)
        if not self._has_ari(directory):
            return None
        url = f"{str(directory['renewalInfo']).rstrip('/')}/{ari_cert_id(cert_pem)}"
        with self._connection(None) as net:
            try:
                resp = net.get(url, content_type="application/json")
                info = messages.RenewalInfo.from_json(resp.json())
            except _ACME_ERRORS as e:
                raise map_acme_error(
                    e,
                    host=self.host,
                    hostname=ctx.hostname,
                    what="fetching renewal information",
                    response=net.last_response,
                ) from e
        window = info.suggested_window
        seconds = retry_after_seconds(resp)
        retry_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds) if seconds is not None else None
        explanation: Any = resp.json().get("explanationURL")
        if window.start is None or window.end is None:
            raise IssuanceError(
                f"ACME server {self.host} sent renewal information without a window for "
                f"{ctx.hostname}; asking again later"
            )
        return RenewalWindow(
            start=window.start,
            end=window.end,
            retry_after=retry_at,
            explanation_url=str(explanation) if explanation else None,
        )

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for _account, net in idle:
            net.session.close()
        if isinstance(self.solver, Closeable):
            self.solver.close()


def _check_url(url: str, options: Options) -> None:
    """A URL the HTTP client can use: a host, a valid port, no spaces or control characters."""
    if any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        raise ConfigError(f"{url!r} holds white space or a control character", table=options.where, key="directory")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError as e:
        raise ConfigError(f"{url!r} is not a valid URL: {e}", table=options.where, key="directory") from e
    if not parts.hostname:
        raise ConfigError(f"{url!r} names no host", table=options.where, key="directory")
