"""Transport pieces of the ACME issuer: a nonce-robust network, error mapping, polling
delays and the ARI certificate id.

Kept apart from :mod:`providers.issuers.acme` so that module reads as the order flow.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import logging
import math
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests
from acme import client as acme_client
from acme import errors as acme_errors
from acme import messages
from cryptography import x509
from josepy import errors as jose_errors

from certmgr.errors import (
    CertmgrError,
    ChallengeError,
    IssuanceError,
    PermanentError,
    RateLimitedError,
)

log = logging.getLogger(__name__)

#: how often one POST is tried again after badNonce (RFC 8555 6.5: always retryable); the acme
#: library alone tries once.  A CA may reject a good share of good nonces: at 50 % (pebble's
#: NONCEREJECT=50) ten retries still lose one POST in 2,048, about one run in twelve for ten
#: certificates; thirty lose one in two billion.  Each retry is one cheap request, so a CA that
#: rejects every nonce costs 31 requests and then a clear error, not a hot loop.
BAD_NONCE_RETRIES = 30

#: problem types that will fail the same way until a person changes something
PERMANENT_CODES = frozenset(
    {
        "rejectedIdentifier",
        "caa",
        "unsupportedIdentifier",
        "badCSR",
        "externalAccountRequired",
        "badSignatureAlgorithm",
        "badPublicKey",
        "invalidContact",
        "unsupportedContact",
        "userActionRequired",
        "malformed",
    }
)


class RetryingNetwork(acme_client.ClientNetwork):
    """A ClientNetwork that survives many badNonce answers and remembers the last
    response, so errors can honour its Retry-After header.

    Not thread-safe (nonces and ``last_response``): use one per issuance.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last_response: requests.Response | None = None
        self.session.merge_environment_settings = _EnvironmentOnce(  # type: ignore[method-assign]
            self.session.merge_environment_settings)

    def _send_request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        response = super()._send_request(method, url, *args, **kwargs)
        self.last_response = response
        return response

    def post(self, *args: Any, **kwargs: Any) -> requests.Response:
        for attempt in range(BAD_NONCE_RETRIES + 1):
            try:
                return self._post_once(*args, **kwargs)
            except messages.Error as error:
                if error.code != "badNonce" or attempt == BAD_NONCE_RETRIES:
                    raise
                # the error response usually carries a fresh nonce: use it and save a
                # round trip; without one the next attempt asks newNonce
                if self.last_response is not None and self.REPLAY_NONCE_HEADER in self.last_response.headers:
                    try:
                        self._add_nonce(self.last_response)
                    except acme_errors.Error:
                        pass
                log.debug("badNonce from %s, retrying (%d)", args[0] if args else "?", attempt + 1)
        raise AssertionError("unreachable")


class _EnvironmentOnce:
    """requests reads the environment (the proxy variables, REQUESTS_CA_BUNDLE, .netrc) before
    every request -- a scan of every variable, a tenth of the CPU a certificate cost.  Read
    it once per CA origin instead: the environment of a running certmgr does not change."""

    def __init__(self, merge: Callable[..., dict[str, Any]]) -> None:
        self._merge = merge
        self._seen: dict[tuple[str, bool | None, object, object], dict[str, Any]] = {}

    def __call__(self, url: str, proxies: Any, stream: bool | None, verify: object, cert: object) -> dict[str, Any]:
        if proxies:  # set per request: nothing to reuse
            return self._merge(url, proxies, stream, verify, cert)
        parts = urlsplit(url)
        key = (f"{parts.scheme}://{parts.netloc}", stream, verify, cert)
        if key not in self._seen:
            self._seen[key] = self._merge(url, proxies, stream, verify, cert)
        merged = self._seen[key]
        return {**merged, "proxies": dict(merged["proxies"])}


def retry_after_seconds(response: requests.Response | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date), or None."""
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


class Poller:
    """Delays between polls: short at first (most local CAs answer within tens of
    milliseconds), growing gently, Retry-After honoured, never past the deadline."""

    def __init__(self, deadline: float, *, first: float = 0.05, factor: float = 1.25, cap: float = 2.0):
        self.deadline = deadline
        self.delay = first
        self.factor = factor
        self.cap = cap

    def wait(self, response: requests.Response | None = None) -> bool:
        """Sleep before the next poll; False when the deadline has passed."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            return False
        hinted = retry_after_seconds(response)
        delay = hinted if hinted is not None else self.delay
        time.sleep(min(delay, remaining))
        self.delay = min(self.delay * self.factor, self.cap)
        return True


def host_of(url: str) -> str:
    return urlsplit(url).netloc or url


def problem_text(error: messages.Error) -> str:
    text = error.detail or error.description or error.typ
    for sub in error.subproblems or ():
        ident = sub.identifier.value if sub.identifier is not None else "?"
        text += f"; {ident}: {sub.detail or sub.typ}"
    return str(text)


def map_acme_error(
    exc: BaseException,
    *,
    host: str,
    hostname: str,
    what: str,
    response: requests.Response | None = None,
) -> CertmgrError:
    """Turn an acme/requests exception into certmgr's error hierarchy.

    ``host`` is the CA's host, ``hostname`` the certificate being worked on, ``what`` the
    step that failed ("creating the order", ...).
    """
    where = f"ACME server {host} ({what} for {hostname})"
    retry_after = retry_after_seconds(response)
    status = response.status_code if response is not None else None
    if isinstance(exc, CertmgrError):
        return exc
    if isinstance(exc, messages.Error):
        code = exc.code or ""
        detail = problem_text(exc)
        if code == "rateLimited" or status == 429:
            return RateLimitedError(
                f"{where}: rate limited: {detail}; certmgr retries after the time the CA asked for",
                retry_after=retry_after,
            )
        if code == "unauthorized" and "external account" in detail.lower():
            return PermanentError(
                f"{where}: external account binding refused: {detail}; "
                "check eab_kid and eab_hmac_key_file for this issuer"
            )
        if code in PERMANENT_CODES:
            return PermanentError(f"{where}: {code}: {detail}; fix the request or the CA settings")
        if code in {"dns", "connection", "incorrectResponse", "tls"}:
            return ChallengeError(f"{where}: validation failed ({code}): {detail}", retry_after=retry_after)
        if (status is not None and status >= 500) or code == "serverInternal":
            return IssuanceError(
                f"{where}: server error {status or ''} {detail}; retrying later", retry_after=retry_after
            )
        return IssuanceError(f"{where}: {code or 'error'}: {detail}", retry_after=retry_after)
    if isinstance(exc, requests.Timeout):
        return IssuanceError(f"{where}: timed out talking to the CA; retrying later")
    if isinstance(exc, requests.exceptions.SSLError):
        return IssuanceError(
            f"{where}: TLS failure talking to the CA ({exc}); check ca_bundle if the CA uses a private root"
        )
    if isinstance(exc, requests.ConnectionError):
        return IssuanceError(f"{where}: cannot connect to the CA ({exc}); retrying later")
    if isinstance(exc, acme_errors.ClientError):
        arg = exc.args[0] if exc.args else None
        resp = arg if isinstance(arg, requests.Response) else response
        code_ = resp.status_code if resp is not None else None
        if code_ == 429:
            return RateLimitedError(
                f"{where}: rate limited (HTTP 429)", retry_after=retry_after_seconds(resp)
            )
        return IssuanceError(
            f"{where}: unexpected answer (HTTP {code_}): {exc}", retry_after=retry_after_seconds(resp)
        )
    if isinstance(exc, jose_errors.DeserializationError | ValueError):
        return IssuanceError(f"{where}: malformed answer from the CA: {exc}")
    return IssuanceError(f"{where}: {type(exc).__name__}: {exc}")


def ari_cert_id(cert_pem: bytes) -> str:
    """RFC 9773 certificate identifier: base64url(AKI keyIdentifier) "." base64url(serial DER)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    if aki.key_identifier is None:
        raise PermanentError("certificate has no authority key identifier; ARI cannot name it")
    serial = cert.serial_number
    serial_bytes = serial.to_bytes(math.ceil((serial.bit_length() + 1) / 8), "big", signed=True)

    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).decode("ascii").rstrip("=")

    return f"{b64(aki.key_identifier)}.{b64(serial_bytes)}"
