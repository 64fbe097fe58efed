"""Renew many certificates at once: one worker per MTA, its slots in turn.

Each MTA's slots are renewed sequentially (a dual MTA gets both certificates
before it is deployed); different MTAs run concurrently.  MTAs that share a deploy
target (several hostnames of one MTA instance) share one worker: their
certificates are renewed first, then each target is deployed once, as one unit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime

from certmgr.config.model import MtaConfig
from certmgr.deploy.orchestrate import deploy_mtas, deploy_units
from certmgr.errors import CertmgrError
from certmgr.lifecycle import policy
from certmgr.lifecycle.issue import Outcome, not_due, renew_slot, why_due
from certmgr.runtime import Runtime
from certmgr.store import utcnow
from certmgr.store.decisions import Decisions, SlotState
from certmgr.store.deployments import DeployTry

log = logging.getLogger("certmgr.renew")

Progress = Callable[[Outcome], None]


@dataclass
class Unchanged:
    """What a renewal run read of every slot (every stored slot, and each one's current
    certificate), filled in only when the run changed none of it: the reminder pass that
    follows in the same command reuses it instead of reading 10,000 rows again."""

    read: Decisions | None = None

    def take(self) -> Decisions | None:
        """The read, once: it is let go here, so it is not held while the output is printed."""
        read, self.read = self.read, None
        return read


def renew_many(
    rt: Runtime,
    hosts: list[str],
    *,
    force: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    unchanged: Unchanged | None = None,
) -> list[Outcome]:
    wanted = {rt.config.mta(h).hostname for h in hosts}  # an unknown name is a usage error
    if not rt.read_only:
        rt.sync_config()
    # every slot (or the named hosts') and its current certificate, in one query, as plain rows:
    # what is not due is decided and said from these; a due slot is read again under its lease
    read = rt.store.decision_rows(wanted or None)
    stored, current = read
    rows = {s.slot_key: s for s in stored}
    by_mta: dict[str, tuple[MtaConfig, list[SlotState]]] = {}
    for key, mta in rt.mta_of.items():  # in config order
        slot = rows.get(key)  # only a read-only store may lack one
        if slot is not None and (not wanted or mta.hostname in wanted):
            by_mta.setdefault(mta.hostname, (mta, []))[1].append(slot)
    # naming a host limits the run to it and renews (and deploys) it if due, trying now despite a
    # back-off (as certbot's `renew --cert-name`); only --force renews what is not due
    retry_now = bool(hosts)
    # every deployment of every certificate, in one query, for the MTAs whose renewal issues nothing
    tries = rt.store.deploy_tries() if any(mta.deploy for mta, _ in by_mta.values()) else {}

    def versions(slots: list[SlotState]) -> list[tuple[int, int]]:
        return [(s.id, v.id) for s in slots if (v := current.get(s.id))]

    def not_deployed(mta: MtaConfig, slots: list[SlotState]) -> bool:
        due, held = deploy_state(mta, versions(slots), tries, utcnow())
        return due or (retry_now and held is not None)

    def held_until(mta: MtaConfig, slots: list[SlotState]) -> datetime | None:
        return deploy_state(mta, versions(slots), tries, utcnow())[1]

    def one_mta(mta: MtaConfig, slots: list[SlotState]) -> list[Outcome]:
        out = []
        for slot in slots:
            outcome = renew_slot(rt, mta, slot, current.get(slot.id), force=force, retry_now=retry_now,
                                 dry_run=dry_run)
            if progress:
                progress(outcome)
            out.append(outcome)
        return out

    def one_unit(unit: list[tuple[MtaConfig, list[SlotState]]]) -> list[Outcome]:
        out: list[Outcome] = []
        due: list[MtaConfig] = []
        for mta, slots in unit:
            done = one_mta(mta, slots)
            out += done
            if not mta.deploy:
                continue
            issued = any(o.action == "issued" for o in done)
            if dry_run:
                if issued or any(o.action == "would-renew" for o in done) or not_deployed(mta, slots):
                    out.append(Outcome(mta.hostname, "all", "would-deploy", ", ".join(mta.deploy)))
            elif issued or not_deployed(mta, slots):
                due.append(mta)
            elif (retry_at := held_until(mta, slots)) is not None:
                out.append(held_outcome(mta, retry_at))
        for report in deploy_mtas(rt, due) if due else []:
            action = "deployed" if report.ok else ("deploy-waiting" if report.waiting else
                                                   "rolled-back" if report.rolled_back else "deploy-failed")
            out.append(Outcome(report.hostname, "all", action, f"{report.target}: {report.message}"))
        if not dry_run:
            out += [o for mta, _ in unit if (o := _maintain_dane(rt, mta))]
            for mta, _ in unit:
                if mta.dane_publish is not None:
                    from certmgr.dns.notices import queue_late_notice

                    queue_late_notice(rt, mta, utcnow())
        return out

    units = [[by_mta[m.hostname] for m in group]
             for group in deploy_units([mta for mta, _ in by_mta.values()])]
    results: list[Outcome] = []
    start = utcnow()

    def idle(unit: list[tuple[MtaConfig, list[SlotState]]]) -> bool:
        """Nothing to do but say so: no slot due, nothing to deploy, no DNS records to keep
        (decided from what was read above, without I/O; the claim re-checks what is due)."""
        return not force and all(
            mta.dane_publish is None and not not_deployed(mta, slots)
            and all(why_due(mta, s, current.get(s.id), start) is None for s in slots)
            for mta, slots in unit)

    def say_idle(unit: list[tuple[MtaConfig, list[SlotState]]]) -> list[Outcome]:
        """What ``one_unit`` says of an idle unit, without its calls: not due, or a deployment
        held by its back-off."""
        out = []
        for mta, slots in unit:
            for slot in slots:
                out.append(outcome := not_due(slot))
                if progress:
                    progress(outcome)
            if not dry_run and (retry_at := held_until(mta, slots)) is not None:
                out.append(held_outcome(mta, retry_at))
        return out

    busy = []
    for unit in units:  # at 10,000 certificates, a pool task each cost more than the check itself
        if idle(unit):
            results.extend(say_idle(unit))
        else:
            busy.append(unit)
    if unchanged is not None and not hosts and not busy and not dry_run and not rt.config.mta_sts:
        # every slot was idle: decided from what was read above, nothing written to slots or versions
        unchanged.read = read
    workers = max(1, min(rt.config.settings.concurrency, len(busy)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="renew") as pool:
        futures = [pool.submit(one_unit, u) for u in busy]
        for f in as_completed(futures):
            results.extend(f.result())
    if not hosts and rt.config.mta_sts:  # the mta-sts.<domain> certificates, policies and ids
        from certmgr.dns.mtasts_renew import renew_domains

        results += renew_domains(rt, force=force, dry_run=dry_run)
    order = {h: i for i, h in enumerate(by_mta)}
    results.sort(key=lambda o: (order.get(o.hostname, len(order)), o.key_alg == "all", o.key_alg))
    return results


def _maintain_dane(rt: Runtime, mta: MtaConfig) -> Outcome | None:
    """Retire an MTA's old TLSA records once their TTL has passed (``dane.publish`` only)."""
    from certmgr.dns import dane_gate  # only MTAs whose TLSA records certmgr keeps need it

    try:
        rollover = dane_gate.for_mta(rt, mta)
        done = rollover.maintain(utcnow()) if rollover else None
    except CertmgrError as e:  # DNS down: the records stay one more round, nothing breaks
        log.warning("%s: DANE records not maintained: %s", mta.hostname, e)
        return None
    return Outcome(mta.hostname, "all", "dane", done) if done else None


def needs_deploy(mta: MtaConfig, versions: Iterable[tuple[int, int]],
                 tries: Mapping[tuple[int, int], Sequence[DeployTry]], now: datetime) -> bool:
    """True when a current certificate -- ``versions``: (slot, version) of each -- has no
    verified deployment in ``tries`` (newest first) and the back-off allows a try."""
    return deploy_state(mta, versions, tries, now)[0]


def deploy_state(mta: MtaConfig, versions: Iterable[tuple[int, int]],
                 tries: Mapping[tuple[int, int], Sequence[DeployTry]], now: datetime) -> tuple[bool, datetime | None]:
    """(a deployment is due now, else when the back-off after failed deployments lets the next
    one be tried).  (False, None): every current certificate is deployed, or waits on DNS, which
    is looked at again on every run."""
    if not mta.deploy:
        return False, None
    held: datetime | None = None
    for key in versions:
        attempts = tries.get(key, [])
        if any(t.result == "verified" for t in attempts):
            continue
        attempts = [t for t in attempts if t.result != "waiting"]
        if not attempts:
            return True, None
        retry_at = attempts[0].started_at + policy.backoff_delay(len(attempts))
        if now >= retry_at:
            return True, None
        held = retry_at if held is None else min(held, retry_at)
    return False, held


def held_outcome(mta: MtaConfig, retry_at: datetime) -> Outcome:
    """What `renew` says of an MTA whose certificate is not deployed and whose next deployment
    waits for the back-off: not a silent "not due"."""
    return Outcome(mta.hostname, "all", "deploy-held",
                   f"the current certificate is not deployed (the last deployment failed, see `certmgr status`); "
                   f"next try at {retry_at:%Y-%m-%d %H:%M} UTC, or now with `certmgr renew {mta.hostname}`")
