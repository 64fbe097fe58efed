"""One ACME issuance: order (new or resumed), challenges, finalization, download.

Uses the ``acme`` library for every message; only the polling is our own, because the
library's pollers sleep a fixed second between polls, which dominates issuance time
against a fast CA.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from typing import Any

import requests
from acme import challenges, messages
from acme import client as acme_client
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from josepy import b64, json_util, jwk
from josepy import errors as jose_errors

from certmgr.errors import ChallengeError, IssuanceError, PermanentError
from certmgr.interfaces import CertRequest, ChallengeSolver, ChallengeTask, IssueContext, IssuedCertificate
from providers.issuers.acme_net import PERMANENT_CODES, Poller, ari_cert_id, problem_text

log = logging.getLogger(__name__)

#: orders in these states can still lead to a certificate
USABLE = frozenset(
    {messages.STATUS_PENDING, messages.STATUS_READY, messages.STATUS_PROCESSING, messages.STATUS_VALID}
)


class NewOrderWithReplaces(messages.NewOrder):
    """newOrder with the RFC 9773 ``replaces`` field, which acme 5.9 does not send."""

    replaces: str | None = json_util.field("replaces", omitempty=True)


class Issuance:
    """The steps of one issuance over one client (one network, one nonce pool)."""

    def __init__(
        self,
        client: acme_client.ClientV2,
        key: jwk.JWK,
        solver: ChallengeSolver,
        request: CertRequest,
        ctx: IssueContext,
        *,
        host: str,
        deadline: float,
        profile: str | None,
        send_replaces: bool,
        resume_order_url: str | None = None,
    ) -> None:
        self.client = client
        self.key = key
        self.solver = solver
        self.request = request
        self.ctx = ctx
        self.host = host
        self.deadline = deadline
        self.profile = profile
        self.send_replaces = send_replaces
        self.resume_order_url = resume_order_url
        #: the step under way, named in error messages
        self.what = "starting"

    # -- helpers --------------------------------------------------------

    def _get(self, url: str, **kwargs: Any) -> requests.Response:
        # POST-as-GET (RFC 8555 6.3), signed with the account key
        return self.client._post_as_get(url, **kwargs)

    def _timeout(self) -> IssuanceError:
        return IssuanceError(
            f"ACME server {self.host}: {self.what} for {self.request.hostname} did not finish in time; "
            "certmgr retries later (raise the issuer's timeout if the CA is slow)"
        )

    def _authz(self, url: str) -> messages.AuthorizationResource:
        resp = self._get(url)
        return messages.AuthorizationResource(body=messages.Authorization.from_json(resp.json()), uri=url)

    # -- order ------------------------------------------------------------

    def run(self) -> IssuedCertificate:
        orderr = self._resume() if self.resume_order_url else None
        if orderr is None:
            orderr = self._new_order()
        if orderr.body.status == messages.STATUS_PENDING:
            self._authorize(orderr)
        return self._finalize(orderr)

    def _resume(self) -> messages.OrderResource | None:
        url = self.resume_order_url
        assert url is not None
        self.what = "resuming the order"
        try:
            resp = self._get(url)
            body = messages.Order.from_json(resp.json())
        except (messages.Error, requests.RequestException, ValueError, jose_errors.DeserializationError) as e:
            log.info("%s: order %s cannot be resumed (%s); making a new one", self.request.hostname, url, e)
            return None
        names = {i.value for i in body.identifiers or ()}
        expired = body.expires is not None and body.expires <= dt.datetime.now(dt.UTC)
        if body.status not in USABLE or expired or names != set(self.request.names):
            return None
        authzs = [self._authz(u) for u in body.authorizations or ()]
        return messages.OrderResource(body=body, uri=url, authorizations=authzs, csr_pem=self.request.csr_pem)

    def _replaces(self) -> str | None:
        """The ARI id of the certificate being replaced, when the CA understands it."""
        if not self.send_replaces or self.request.replaces_pem is None:
            return None
        try:
            return ari_cert_id(self.request.replaces_pem)
        except PermanentError as e:
            log.info("%s: not telling the CA which certificate this replaces: %s", self.request.hostname, e)
            return None

    def _new_order(self) -> messages.OrderResource:
        self.what = "creating the order"
        identifiers = [messages.Identifier(typ=messages.IDENTIFIER_FQDN, value=n) for n in self.request.names]
        order = NewOrderWithReplaces(
            identifiers=identifiers,
            profile=self.profile,
            replaces=self._replaces(),
        )
        resp = self.client._post(self.client.directory["newOrder"], order)
        body = messages.Order.from_json(resp.json())
        uri = resp.headers.get("Location")
        if not uri:
            raise IssuanceError(
                f"ACME server {self.host} created an order without a Location; retrying later"
            )
        self.ctx.record_step("order_created", {"order_url": uri})
        self.what = "fetching authorizations"
        authzs = [self._authz(u) for u in body.authorizations or ()]
        return messages.OrderResource(body=body, uri=uri, authorizations=authzs, csr_pem=self.request.csr_pem)

    # -- challenges -------------------------------------------------------

    def _pick(self, authzr: messages.AuthorizationResource) -> messages.ChallengeBody:
        ctype = self.solver.challenge_type
        for challb in authzr.body.challenges:
            if challb.chall.typ == ctype:
                return challb
        offered = ", ".join(sorted(c.chall.typ for c in authzr.body.challenges)) or "none"
        raise PermanentError(
            f"ACME server {self.host} offers no {ctype} challenge for {authzr.body.identifier.value} "
            f"(offered: {offered}); configure a challenge of one of those types for this issuer"
        )

    def _task(self, domain: str, challb: messages.ChallengeBody) -> ChallengeTask:
        chall = challb.chall
        assert isinstance(chall, challenges.KeyAuthorizationChallenge)
        key_authz = chall.key_authorization(self.key)
        digest = hashlib.sha256(key_authz.encode("utf-8")).digest()
        return ChallengeTask(
            domain=domain,
            token=chall.encode("token"),
            key_authorization=key_authz,
            dns_value=b64.b64encode(digest).decode("ascii"),
        )

    def _authorize(self, orderr: messages.OrderResource) -> None:
        work: list[tuple[messages.AuthorizationResource, messages.ChallengeBody, ChallengeTask]] = []
        presented: list[ChallengeTask] = []
        try:
            for authzr in orderr.authorizations:
                status = authzr.body.status
                if status == messages.STATUS_VALID:
                    continue
                domain = authzr.body.identifier.value
                if status != messages.STATUS_PENDING:
                    raise self._authz_failure(authzr, None)
                challb = self._pick(authzr)
                task = self._task(domain, challb)
                self.what = f"publishing the {challb.chall.typ} answer for {domain}"
                self.solver.present(task)
                presented.append(task)
                work.append((authzr, challb, task))
            for _authzr, challb, task in work:
                self.what = f"answering the {challb.chall.typ} challenge for {task.domain}"
                if challb.status == messages.STATUS_PENDING:
                    self.client.answer_challenge(challb, challb.response(self.key))
                self.ctx.record_step("challenge_answered", {"domain": task.domain, "type": challb.chall.typ})
            self._wait_authorizations([a for a, _, _ in work])
        finally:
            for task in presented:
                try:
                    self.solver.cleanup(task)
                except Exception as e:
                    log.warning("%s: cleanup of the challenge for %s failed: %s", self.host, task.domain, e)

    def _wait_authorizations(self, pending: list[messages.AuthorizationResource]) -> None:
        self.what = "waiting for validation"
        poller = Poller(self.deadline)
        last: requests.Response | None = None
        while pending:
            if not poller.wait(last):
                raise self._timeout()
            still = []
            for authzr in pending:
                authzr, last = self.client.poll(authzr)
                status = authzr.body.status
                if status == messages.STATUS_VALID:
                    continue
                if status == messages.STATUS_PENDING:
                    still.append(authzr)
                    continue
                raise self._authz_failure(authzr, last)
            pending = still

    def _authz_failure(
        self, authzr: messages.AuthorizationResource, resp: requests.Response | None
    ) -> Exception:
        domain = authzr.body.identifier.value
        ctype = self.solver.challenge_type
        for challb in authzr.body.challenges:
            if challb.error is not None:
                code = challb.error.code or ""
                detail = problem_text(challb.error)
                text = (
                    f"ACME server {self.host}: {challb.chall.typ} challenge for {domain} "
                    f"was not validated: {detail}"
                )
                if code in PERMANENT_CODES:
                    return PermanentError(f"{text}; the CA refuses this name until its policy or CAA changes")
                return ChallengeError(
                    f"{text}; check that the {challb.chall.typ} answer is reachable by the CA"
                )
        return ChallengeError(
            f"ACME server {self.host}: authorization for {domain} ({ctype}) is {authzr.body.status.name} "
            "without details; certmgr retries with a new order"
        )

    # -- finalization -----------------------------------------------------

    def _finalize(self, orderr: messages.OrderResource) -> IssuedCertificate:
        self.what = "finalizing the order"
        poller = Poller(self.deadline)
        body = orderr.body
        last: requests.Response | None = None
        finalized = body.status in (messages.STATUS_PROCESSING, messages.STATUS_VALID)
        while True:
            status = body.status
            if status == messages.STATUS_INVALID:
                if body.error is not None:
                    raise _order_error(self.host, self.request.hostname, body.error)
                raise IssuanceError(
                    f"ACME server {self.host}: order for {self.request.hostname} became invalid without "
                    "details; certmgr retries with a new order"
                )
            if status == messages.STATUS_VALID and body.certificate:
                break
            if status == messages.STATUS_READY and not finalized:
                csr = x509.load_pem_x509_csr(self.request.csr_pem)
                last = self.client._post(body.finalize, messages.CertificateRequest(csr=csr))
                body = messages.Order.from_json(last.json())
                finalized = True
                self.ctx.record_step("finalized", {"order_url": orderr.uri})
                continue
            if not poller.wait(last):
                raise self._timeout()
            last = self._get(orderr.uri)
            body = messages.Order.from_json(last.json())
        self.ctx.record_step("order_valid", {"order_url": orderr.uri})
        self.what = "downloading the certificate"
        assert body.certificate is not None
        resp = self._get(body.certificate)
        pem = resp.content
        _check_chain(pem, self.request, self.host)
        self.ctx.record_step("certificate_downloaded", {"order_url": orderr.uri})
        return IssuedCertificate(fullchain_pem=pem, order_url=orderr.uri)


def _order_error(host: str, hostname: str, error: messages.Error) -> Exception:
    code = error.code or ""
    text = f"ACME server {host}: order for {hostname} failed: {problem_text(error)}"
    if code in PERMANENT_CODES:
        return PermanentError(f"{text}; fix the request or the CA settings")
    return IssuanceError(f"{text}; certmgr retries with a new order")


def _check_chain(pem: bytes, request: CertRequest, host: str) -> None:
    """The leaf must carry the CSR's key; anything else is a CA fault we must not install."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as e:
        raise IssuanceError(
            f"ACME server {host} sent an unreadable certificate for {request.hostname}: {e}"
        ) from e
    csr = x509.load_pem_x509_csr(request.csr_pem)

    def spki(k: Any) -> bytes:
        return bytes(
            k.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        )

    if not certs or spki(certs[0].public_key()) != spki(csr.public_key()):
        raise IssuanceError(
            f"ACME server {host} returned a certificate for {request.hostname} whose key does not match "
            "the request; it was not installed"
        )


def monotonic_deadline(seconds: float) -> float:
    return time.monotonic() + seconds
