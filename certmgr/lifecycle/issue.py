"""The lifecycle of one certificate slot: planned -> key ready -> order pending -> issued.

Every step is written to the store before the next one starts, so an
interrupted run resumes: the stored key and the pending ACME order are reused.
Work on a slot is claimed with a lease first and the slot is read again after
the claim (lock, re-check, act), so a racing process finds it done or busy.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from certmgr.config.model import MtaConfig
from certmgr.errors import CertmgrError, LockBusy, PermanentError, RetryableError
from certmgr.faults import checkpoint
from certmgr.interfaces import CertRequest, IssueContext, Issuer, Preparing, RenewalInfoSource, renews_automatically
from certmgr.lifecycle import policy
from certmgr.lifecycle.versions import IssuedBy, check_chain, save_version
from certmgr.pki.keys import PrivateKey, generate_key, key_to_pem, load_key, make_csr
from certmgr.runtime import Runtime
from certmgr.store import CertVersion, ManagedCert, utcnow
from certmgr.store.decisions import CurrentCert, SlotState
from certmgr.store.files import write_new

log = logging.getLogger("certmgr.lifecycle")

ISSUE_TIMEOUT = 300.0
#: a claim lasts this long and is extended at every recorded step, so a node that dies
#: mid-renewal frees its certificates for another node within about this time.
#: CERTMGR_LEASE_SECONDS overrides it (tests of takeover use a few seconds).
LEASE_SECONDS = float(os.environ.get("CERTMGR_LEASE_SECONDS") or 90.0)


@dataclass(frozen=True)
class Outcome:
    hostname: str
    key_alg: str
    action: str  # issued | not-due | manual | busy | failed | waiting | would-renew
    message: str = ""
    version_id: int | None = None

    @property
    def failed(self) -> bool:
        return self.action in ("failed", "rolled-back", "deploy-failed", "deploy-held", "mta-sts-refused")


def renew_at_for(mta: MtaConfig, version: CertVersion, key: str) -> datetime:
    facts = policy.RenewalFacts(
        not_before=version.not_before,
        not_after=version.not_after,
        renew_before=timedelta(days=mta.renew_before_days) if mta.renew_before_days else None,
        ari_start=version.ari_start,
        ari_end=version.ari_end,
    )
    return policy.renewal_time(facts, jitter_key=key)


def why_due(mta: MtaConfig, slot: ManagedCert | SlotState, version: CertVersion | CurrentCert | None,
            now: datetime) -> str | None:
    """The reason this slot, whose current certificate is ``version``, needs a certificate now, or
    None (from the plain rows every slot is read as, or from the model objects read under a lease)."""
    if version is None:
        return "no certificate yet"
    if version.key_type != slot.key_type:
        return f"key type changed to {slot.key_type}"
    if sorted(version.all_names) != sorted(mta.all_names):
        return "names changed"
    if version.revoked_at is not None:
        return "certificate revoked"
    if policy.is_due(slot.renew_at, now):
        return "inside the renewal window"
    return None


class PendingKey(NamedTuple):
    """The key a slot's next certificate certifies, and its CSR (made once, kept on the slot)."""

    path: Path
    key: PrivateKey
    csr: bytes
    new_csr: bool  # made now (else the one stored for this key)


def pending_key(rt: Runtime, mta: MtaConfig, slot: ManagedCert, current: CertVersion | None) -> PendingKey:
    """The key to certify: a pending one from an interrupted run, the current one when
    ``reuse_key`` is set (DANE pins), the key generated ahead when certmgr keeps the MTA's TLSA
    records (its record is already published), else a fresh one recorded before it is used; with
    its CSR, signed once and stored in the same transaction as the key (``current``: the slot's
    current certificate)."""
    assert slot.id is not None
    if slot.pending_key_path and Path(slot.pending_key_path).exists():
        path = Path(slot.pending_key_path)
        key = load_key(path)
        if slot.pending_csr:
            return PendingKey(path, key, slot.pending_csr.encode(), False)
        csr = make_csr(key, slot.hostname, mta.names)
        rt.store.update_slot(slot.id, pending_csr=csr.decode())
        return PendingKey(path, key, csr, True)
    ahead = rt.state.next_key_path(slot.hostname, slot.key_type)
    if mta.reuse_key and current is not None and current.key_type == slot.key_type:
        path = Path(current.key_path)
        key = load_key(path)
    elif mta.dane_publish is not None and ahead.exists():
        # a copy under the version's own name: the next key file is replaced after the deployment
        key = load_key(ahead)
        path = rt.state.new_key_path(slot.hostname, slot.key_alg)
        write_new(path, key_to_pem(key), 0o600)
    else:
        key = generate_key(slot.key_type)
        path = rt.state.new_key_path(slot.hostname, slot.key_alg)
        write_new(path, key_to_pem(key), 0o600)
    csr = make_csr(key, slot.hostname, mta.names)
    rt.store.key_ready(slot.id, slot.hostname, slot.key_alg, slot.key_type, str(path), csr.decode())
    checkpoint("key_ready")
    return PendingKey(path, key, csr, True)


def not_due(slot: ManagedCert | SlotState) -> Outcome:
    """What `renew` says of a slot that is not due."""
    return Outcome(slot.hostname, slot.key_alg, "not-due",
                   f"not due until {slot.renew_at:%Y-%m-%d %H:%M} UTC; use --force to renew now"
                   if slot.renew_at else "use --force to renew now")


def renew_slot(
    rt: Runtime,
    mta: MtaConfig,
    slot: SlotState,
    current: CurrentCert | None,
    *,
    force: bool = False,
    retry_now: bool = False,
    dry_run: bool = False,
    now: Callable[[], datetime] = utcnow,
) -> Outcome:
    """Renew the slot, whose current certificate is ``current`` (plain rows, read by the caller
    with every other slot's), if due (or ``force``); ``retry_now`` ignores the back-off after a
    failure.  What it writes is read again as model objects under the slot's lease."""
    host, alg = slot.hostname, slot.key_alg
    issuer = rt.providers.issuer(mta.issuer)
    automatic = renews_automatically(issuer)
    reason = "forced" if force else why_due(mta, slot, current, now())
    if reason is None:
        return not_due(slot)
    if not automatic and not force:
        return Outcome(host, alg, "manual", f"{reason}; issuer {mta.issuer} is manual: "
                       f"`certmgr csr {host}` then `certmgr import {host} FILE`")
    if not force and slot.state == "failed" and slot.last_error_permanent:
        # it would fail the same way until a person acts: no retries, with or without back-off
        return Outcome(host, alg, "waiting", f"last attempt failed for good: {slot.last_error}; "
                       f"fix that, then run `certmgr renew --force {host}`")
    if not force and not retry_now and slot.next_retry_at is not None and now() < slot.next_retry_at:
        return Outcome(host, alg, "waiting", f"last attempt failed; next try at {slot.next_retry_at:%H:%M} UTC "
                       "(name the host or use --force to try now)")
    if dry_run:
        return Outcome(host, alg, "would-renew", reason)
    if not rt.claim(slot.id, rt.node, LEASE_SECONDS):
        return Outcome(host, alg, "busy", "another certmgr process is renewing it right now")
    slot_id = slot.id
    outcome = None
    try:
        claimed = rt.store.slot(slot_id)  # re-check under the claim: it may be done already
        version = rt.store.version(claimed.current_version_id)
        if not force and why_due(mta, claimed, version, now()) is None:
            return Outcome(host, alg, "not-due", "renewed by another process")
        outcome = _issue(rt, mta, claimed, version, issuer, reason, now)
        return outcome
    finally:
        if outcome is None or outcome.action != "issued":  # recording the certificate released it
            rt.store.release(slot_id, rt.node)


def _issue(rt: Runtime, mta: MtaConfig, slot: ManagedCert, current: CertVersion | None, issuer: Issuer,
           reason: str, now: Callable[[], datetime]) -> Outcome:
    assert slot.id is not None
    slot_id, host, alg = slot.id, slot.hostname, slot.key_alg
    order_id = rt.store.start_renewal(slot_id, mta.issuer, rt.node, host, alg, reason)
    try:
        stranded = _stranded_version(rt, mta, slot, now())
        if stranded is not None:
            log.info("%s (%s): adopting serial %s, obtained by an interrupted run", host, alg, stranded.serial)
            return _make_current(rt, mta, slot, order_id, stranded, now)
        prepare_ahead(issuer, account_context(rt, mta.issuer, host))
        key_path, key, csr, _ = pending_key(rt, mta, slot, current)
        replaces = Path(current.cert_path).read_bytes() if current is not None else None

        def record_step(step: str, detail: Mapping[str, str]) -> None:
            # one transaction: the step, the event and the heartbeat.  If the lease was lost
            # (this process stalled past it and another node took over), stop here rather
            # than order twice.
            if not rt.store.record_step(slot_id, order_id, rt.node, LEASE_SECONDS, step, host, alg, detail):
                raise LockBusy(f"{host} ({alg}): another node took over this renewal; stopping")
            checkpoint(step)

        ctx = dataclasses.replace(account_context(rt, mta.issuer, host), record_step=record_step,
                                  resume_order_url=slot.pending_order_url, timeout=ISSUE_TIMEOUT)
        request = CertRequest(host, mta.all_names, slot.key_type, csr, replaces)
        issued = issuer.issue(request, ctx)
        certs, facts = check_chain(issued.fullchain_pem, key, mta.all_names, host,
                                   where=f"certificate from issuer {mta.issuer}", now=now())
        version = save_version(rt.state, slot, certs, facts, key_path, source="acme",
                               issued_by=issued_by(rt, mta.issuer, issued.account_uri),
                               order_url=issued.order_url)
        checkpoint("certificate_stored")
        if isinstance(issuer, RenewalInfoSource):
            # the certificate is issued and stored: no answer about its renewal window (a CA may
            # not know a certificate this new yet, and answer 404) can make this renewal fail
            try:
                window = issuer.renewal_info(issued.fullchain_pem, ctx)
            except CertmgrError as e:
                window = None
                log.info("%s: renewal information unavailable now (%s); using the lifetime rule until "
                         "the daemon asks again", host, e)
            if window is not None:
                version.ari_start, version.ari_end = window.start, window.end
        # recorded with a last heartbeat: a node that stalled past its lease (the renewal
        # information request above can be slow) leaves the slot to its new holder
        recorded = rt.store.record_certificate(version, rt.node, LEASE_SECONDS)
        if recorded is None:
            raise LockBusy(f"{host} ({alg}): another node took over this renewal while this run stalled; "
                           "this run records nothing")
        checkpoint("version_added")
        return _make_current(rt, mta, slot, order_id, recorded, now)
    except LockBusy as e:
        rt.store.update_order(order_id, state="abandoned", error=str(e))
        return Outcome(host, alg, "busy", str(e))
    except CertmgrError as e:
        return _failed(rt, slot_id, order_id, mta, e, now)
    except Exception as e:  # the per-certificate boundary: one broken certificate must not stop the others
        log.exception("%s (%s): unexpected error", host, alg)
        return _failed(rt, slot_id, order_id, mta, PermanentError(f"{host}: internal error: {e!r}"), now)


def account_context(rt: Runtime, issuer: str, hostname: str) -> IssueContext:
    """What an issuer needs of the core to work for ``hostname`` (its account, loaded and saved)."""
    return IssueContext(hostname=hostname, load_account=lambda: rt.load_account(issuer),
                        save_account=rt.save_account)


#: issuers whose shared setup a renewal worker has taken on, each once (they keep it); by id,
#: so an issuer need not be hashable
_prepared: weakref.WeakValueDictionary[int, object] = weakref.WeakValueDictionary()
_prepared_lock = threading.Lock()


def prepare_ahead(issuer: Issuer, ctx: IssueContext) -> None:
    """The first worker to issue from ``issuer`` sets up what all its issuances share
    (:class:`Preparing`: an ACME directory and account) before making its key, while the other
    workers make theirs: with RSA keys and a new account, the first orders start a tenth of a
    20-certificate renewal earlier.  Its errors are this issuance's, as they would be later;
    the other workers go on and meet the issuer's own setup, done or tried again, in ``issue``."""
    if not isinstance(issuer, Preparing):
        return
    with _prepared_lock:
        if _prepared.get(id(issuer)) is issuer:
            return
        _prepared[id(issuer)] = issuer
    issuer.prepare(ctx)


def _stranded_version(rt: Runtime, mta: MtaConfig, slot: ManagedCert, now: datetime) -> CertVersion | None:
    """The certificate of the pending order if an interrupted run (perhaps on another node,
    under another ACME account) already obtained and recorded it but died before making it
    current.  Adopted when its files are readable here and it still passes every check, so
    the takeover orders nothing; otherwise the renewal goes on and orders anew."""
    assert slot.id is not None
    if not slot.pending_order_url:
        return None
    for version in rt.store.versions(slot.id):  # newest first
        if version.id == slot.current_version_id:
            return None  # older ones are history
        if version.order_url != slot.pending_order_url:
            continue
        try:
            key = load_key(Path(version.key_path))
            check_chain(Path(version.fullchain_path).read_bytes(), key, mta.all_names, slot.hostname,
                        where=f"stored certificate {version.fullchain_path}", now=now)
        except (OSError, CertmgrError) as e:
            log.info("%s (%s): not adopting serial %s from an interrupted run: %s",
                     slot.hostname, slot.key_alg, version.serial, e)
            return None
        return version
    return None


def _make_current(rt: Runtime, mta: MtaConfig, slot: ManagedCert, order_id: int, version: CertVersion,
                  now: Callable[[], datetime]) -> Outcome:
    assert slot.id is not None
    slot_id, host, alg = slot.id, slot.hostname, slot.key_alg
    renew_at = renew_at_for(mta, version, f"{host}/{alg}/{version.serial}")
    recorded = rt.store.record_issued(
        slot_id, order_id, rt.node,
        dict(current_version_id=version.id, state="issued", pending_key_path=None, pending_csr=None,
             pending_order_url=None, pending_since=None, attempts=0, last_error=None, last_error_permanent=False,
             last_result="success", last_attempt_at=now(), next_retry_at=None, renew_at=renew_at),
        {"serial": version.serial, "not_after": version.not_after.isoformat(), "sha256": version.sha256},
    )
    if not recorded:
        raise LockBusy(f"{host} ({alg}): another node took over this renewal while this run stalled; "
                       f"serial {version.serial} stays in the history, not current")
    log.info("%s (%s): issued serial %s, expires %s", host, alg, version.serial, version.not_after)
    checkpoint("issued")
    return Outcome(host, alg, "issued", f"serial {version.serial}, expires {version.not_after:%Y-%m-%d}",
                   version.id)


def _failed(rt: Runtime, slot_id: int, order_id: int, mta: MtaConfig, err: CertmgrError,
            now: Callable[[], datetime]) -> Outcome:
    slot = rt.store.slot(slot_id)
    attempts = slot.attempts + 1
    current = rt.store.version(slot.current_version_id)
    retry_after = getattr(err, "retry_after", None)
    permanent = not isinstance(err, RetryableError)
    # a permanent failure is not retried by itself (it would fail the same way): it waits
    # for a person to fix the cause and name the host
    at = None if permanent else policy.next_retry(attempts, now(), current.not_after if current else None,
                                                  retry_after=retry_after)
    fields: dict[str, object] = dict(
        attempts=attempts, last_error=str(err), last_error_permanent=permanent, last_result="failure",
        last_attempt_at=now(), next_retry_at=at, state="failed",
    )
    if permanent:
        fields["pending_order_url"] = None  # a refused order is not resumed; the key is kept
    rt.store.update_slot(slot_id, **fields)
    rt.store.update_order(order_id, state="failed", error=str(err))
    rt.store.log("renewal_failed", slot.hostname, slot.key_alg,
                 {"error": str(err), "permanent": permanent, "attempt": attempts,
                  "next_retry": at.isoformat() if at else None})
    log.warning("%s (%s): renewal failed (attempt %d, %s): %s", slot.hostname, slot.key_alg, attempts,
                f"next try {at:%Y-%m-%d %H:%M} UTC" if at
                else f"not retried until `certmgr renew --force {slot.hostname}`",
                err)
    return Outcome(slot.hostname, slot.key_alg, "failed", str(err))


def issued_by(rt: Runtime, issuer: str, account_uri: str | None = None) -> IssuedBy:
    """The issuer ``issuer`` of the config as a version records it, with the account that ordered
    the certificate (``account_uri``, as the issuer reported it; else the one stored now)."""
    cfg = rt.config.issuers[issuer]
    if account_uri is None and cfg.type == "acme":
        account = rt.load_account(issuer)
        account_uri = account.uri if account else None
    directory = str(cfg.options.get("directory", ""))
    return IssuedBy(issuer, cfg.type, directory or None, account_uri)
