"""TLSA rollover inside `certmgr renew`, `certmgr deploy` and the daemon, for an MTA with
``dane = { publish = "NAME", ... }``.

Before a new certificate is deployed, :func:`before_deploy` records it as pending, publishes
its records beside the current ones in ``[dns.NAME]`` and asks the engine
(:func:`certmgr.dns.rollover.decide`) whether they have been served by every authoritative
server for at least 2 x TTL: until then the deployment *waits* (recorded, retried by later
runs), the old certificate staying in service with its record.  :func:`after_deploy` records
the switch; :func:`maintain` (every renewal run) removes the retired records once the old TTL
has passed.  The journal is the MTA's row in the store (:mod:`certmgr.store.dns`), and each
of the three runs under that row's lease: with several nodes on one database, one acts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509

from certmgr.config.model import MtaConfig
from certmgr.dns.dane_run import LEASE_SECONDS, load_state, next_key_records, observe, save_state
from certmgr.dns.publisher import DnsPublisher, canonical
from certmgr.dns.rollover import Rollover, Step, decide, deployed, hierarchy_warning, records_for_chain, ta_record
from certmgr.dns.rollover import begin as begin_pending
from certmgr.dns.settings import DaneSettings
from certmgr.errors import PermanentError, RetryableError
from certmgr.interfaces import CertBundle
from certmgr.runtime import owner_is_dead
from certmgr.store import Store
from certmgr.store.dns import DANE, DnsStore
from certmgr.times import utc_text

if TYPE_CHECKING:
    from certmgr.runtime import Runtime

log = logging.getLogger("certmgr.dane")


@dataclass(frozen=True)
class Gate:
    """May the certificate be deployed now?  ``waiting``: not yet (DNS), try again later;
    ``blocked``: never as configured (a refused update, too many records)."""

    deploy: bool
    waiting: bool = False
    reason: str = ""


class DaneRollover:
    """One MTA's TLSA RRset at ``_<port>._tcp.<hostname>`` kept by certmgr in a ``[dns.NAME]`` zone."""

    def __init__(self, *, state_dir: Path, store: Store, owner: str, hostname: str, port: int,
                 settings: DaneSettings, publisher: DnsPublisher, key_types: Sequence[str] = (),
                 is_dead: Callable[[str], bool] = lambda owner: False) -> None:
        self.db = DnsStore(store, state_dir)
        self.owner, self.is_dead = owner, is_dead
        self.key_types = tuple(key_types)
        self.hostname = hostname
        self.port = port
        self.settings = settings
        self.publisher = publisher

    def load(self) -> Rollover:
        return load_state(self.db, self.hostname, port=self.port, ttl=self.publisher.ttl,
                          max_records=self.settings.max_records)

    def _publish(self, st: Rollover, records: Sequence[str]) -> None:
        self.publisher.replace(st.owner, "TLSA", [canonical("TLSA", r) for r in records], ttl=st.ttl)

    @staticmethod
    def _chain(bundle: CertBundle) -> list[x509.Certificate]:
        return x509.load_pem_x509_certificates(bundle.cert_pem + bundle.chain_pem)

    def needs(self, bundles: Sequence[CertBundle]) -> tuple[str, ...]:
        out: list[str] = []
        for b in bundles:
            out += records_for_chain(self._chain(b), self.settings.usages)
        return tuple(dict.fromkeys(r.lower() for r in out))

    def _keep_anchors(self, st: Rollover) -> Rollover:
        """The ``2 1 1`` records of the configured possible intermediates, kept published so that
        a certificate from any of them is matched at once (the issuer of a served certificate
        has its record among ``current`` anyway)."""
        if "2 1 1" not in self.settings.usages:
            return st
        anchors = tuple(dict.fromkeys(ta_record(c) for path in self.settings.intermediates
                                      for c in x509.load_pem_x509_certificates(Path(path).read_bytes())))
        return st if set(anchors) == set(st.trust_anchors) else replace(st, trust_anchors=anchors)

    def before_deploy(self, bundles: Sequence[CertBundle], now: datetime) -> Gate:
        try:
            with self.db.lease(DANE, self.hostname, self.owner, LEASE_SECONDS, self.is_dead) as held:
                if not held:
                    return Gate(False, waiting=True, reason="waiting for DANE: another node is at a rollover "
                                                            f"step of {self.hostname}")
                return self._before_deploy(bundles, now)
        except RetryableError as e:
            return Gate(False, waiting=True, reason=f"waiting for DANE: the zone cannot be updated now: {e}")
        except PermanentError as e:
            return Gate(False, reason=f"not deployed, DANE records cannot be published: {e}")

    def _before_deploy(self, bundles: Sequence[CertBundle], now: datetime) -> Gate:
        fresh = self.db.load(DANE, self.hostname) is None
        st = self.load()
        if fresh:  # take over: what is published now is what the served certificates rely on
            published, _ = observe(self.publisher, st.owner)
            # resolvers may hold the RRset for its published TTL: wait at least that long
            ttls = [seen.ttl for srv in self.publisher.authoritative_servers()
                    if (seen := self.publisher.query(srv, st.owner, "TLSA")).ttl]
            st = replace(st, current=tuple(sorted(published)), ttl=max([st.ttl, *ttls]))
            save_state(self.db, st)
        need = self.needs(bundles)
        if not st.pending and set(need) <= set(st.current):
            return Gate(True, reason="its TLSA records are already current")
        st = self._keep_anchors(st)
        warnings = [w for b in bundles if (w := hierarchy_warning(self._chain(b), st))]
        for w in warnings:  # a CA hierarchy change: a warning now, before it would be an outage
            log.warning("%s", w)
        st = begin_pending(st, need, now)
        save_state(self.db, st)
        for _ in range(3):  # publish, then look at once
            published, everywhere = observe(self.publisher, st.owner)
            d = decide(st, published, everywhere, now, expected_wait=timedelta(seconds=self.settings.late_after))
            if d.state != st:
                save_state(self.db, d.state)
                st = d.state
            if d.late:
                log.warning("DANE %s: %s; waiting on DNS longer than expected", st.owner, d.why)
            if d.step is Step.PUBLISH:
                self._publish(st, d.records)
                continue
            if d.step is Step.DEPLOY:
                return Gate(True, reason=d.why)
            until = f" (next look after {utc_text(d.until)})" if d.until else ""
            return Gate(False, waiting=True, reason="; ".join([*warnings, f"waiting for DANE: {d.why}{until}"]))
        return Gate(False, waiting=True, reason=f"waiting for DANE: {st.owner} TLSA not yet as wanted")

    def _next(self, *, fresh: bool) -> tuple[str, ...]:
        """The records of the keys generated ahead (RFC 7671 section 8.1 "current + next")."""
        if "3 1 1" not in self.settings.usages or not self.key_types:
            return ()
        return next_key_records(self.db, self.hostname, self.key_types, fresh=fresh)

    def after_deploy(self, now: datetime) -> None:
        """The pending certificate is served: its records are current, the old ones retire,
        and fresh keys are generated for the next renewal (published by :meth:`maintain`).  The
        switch has happened: it is recorded even when the lease cannot be had in a while."""
        for _ in range(50):
            with self.db.lease(DANE, self.hostname, self.owner, LEASE_SECONDS, self.is_dead) as held:
                if held:
                    return self._after_deploy(now)
            time.sleep(0.2)
        log.warning("DANE %s: another node holds the rollover; recording the deployment all the same",
                    self.hostname)
        self._after_deploy(now)

    def _after_deploy(self, now: datetime) -> None:
        st = self.load()
        if st.pending:
            save_state(self.db, deployed(st, self._next(fresh=True), now))
            log.info("DANE %s: deployed; the old records go after %s s", st.owner, st.ttl)

    def maintain(self, now: datetime) -> str | None:
        """Between renewals: drop retired records once the old TTL has passed, put back an
        RRset someone changed.  Returns what it did, or None (also when another node holds
        the rollover's lease: it is at it)."""
        with self.db.lease(DANE, self.hostname, self.owner, LEASE_SECONDS, self.is_dead) as held:
            return self._maintain(now) if held else None

    def _maintain(self, now: datetime) -> str | None:
        if self.db.load(DANE, self.hostname) is None:
            return None
        st = self.load()
        if st.pending:
            return None  # the deployment's own step looks at it
        if not st.next and (ahead := self._next(fresh=False)):  # an MTA taken over: keys ahead from now on
            st = replace(st, next=ahead)
            save_state(self.db, st)
        if (anchored := self._keep_anchors(st)) != st:
            st = anchored
            save_state(self.db, st)
        published, everywhere = observe(self.publisher, st.owner)
        d = decide(st, published, everywhere, now)
        if d.state != st:
            save_state(self.db, d.state)  # recorded before it is carried out
        if d.step in (Step.PUBLISH, Step.RETIRE):
            self._publish(d.state, d.records)
            return f"{d.step.value}: {d.why}"
        return None


def for_mta(rt: Runtime, mta: MtaConfig) -> DaneRollover | None:
    """The rollover of an MTA that has ``dane.publish`` (None otherwise)."""
    settings = mta.dane_publish
    if settings is None:
        return None
    return DaneRollover(state_dir=rt.config.settings.state_dir, store=rt.store, owner=rt.node,
                        is_dead=owner_is_dead, hostname=mta.hostname, port=mta.smtp_port,
                        settings=settings, publisher=rt.providers.dns(settings.publish), key_types=mta.key_types)
