"""Deploy an MTA's current certificates to its targets, verify, record.

The deployers install and roll back; :mod:`certmgr.deploy.verify` proves over
STARTTLS that the new certificate is served.  This module picks what to deploy,
claims the work (so two processes never reload one MTA at once) and records
every deployment in the store.  The unit is the deploy target: every [[mta]]
listing it (several hostnames of one MTA instance) is deployed, verified,
rolled back and recorded together.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509

from certmgr.config.model import MtaConfig
from certmgr.deploy.verify import DeployOutcome, deploy_and_verify, make_probe_fn
from certmgr.dns import dane_gate
from certmgr.errors import CertmgrError
from certmgr.faults import checkpoint
from certmgr.interfaces import CertBundle, DeployRequest, HostBundles, SeveralHostnames, VerifyTarget
from certmgr.probe import dane
from certmgr.runtime import Runtime
from certmgr.store import CertVersion, Deployment, ManagedCert, utcnow

log = logging.getLogger("certmgr.deploy")

DEPLOY_LEASE_SECONDS = 300.0


@dataclass(frozen=True)
class DeployReport:
    hostname: str
    target: str
    ok: bool
    rolled_back: bool
    message: str
    #: not deployed yet, by design: its DANE records are not yet visible long enough (retried later)
    waiting: bool = False


def bundle_for(slot: ManagedCert, version: CertVersion) -> CertBundle:
    return CertBundle(
        hostname=slot.hostname,
        names=version.all_names,
        key_type=slot.key_type,
        key_alg=version.key_alg,
        key_pem=Path(version.key_path).read_bytes(),
        cert_pem=Path(version.cert_path).read_bytes(),
        chain_pem=Path(version.chain_path).read_bytes(),
        sha256=version.sha256,
        serial=version.serial,
        not_after=version.not_after,
    )


def current(rt: Runtime, mta: MtaConfig) -> list[tuple[ManagedCert, CertVersion]]:
    out = []
    for _, slot in rt.select([mta.hostname]):
        version = rt.store.version(slot.current_version_id)
        if version is not None:
            out.append((slot, version))
    return out


def deploy_mtas(rt: Runtime, mtas: Sequence[MtaConfig]) -> list[DeployReport]:
    """Deploy every target of ``mtas``, each once: a target several MTAs share is one unit."""
    reports: list[DeployReport] = []
    for name in dict.fromkeys(t for m in mtas for t in m.deploy):
        reports += deploy_target(rt, name)
    return reports


def deploy_units(mtas: Sequence[MtaConfig]) -> list[list[MtaConfig]]:
    """``mtas`` grouped so that MTAs sharing a deploy target (transitively) are together; in
    time linear in the MTAs (a renewal of 10,000 looks at each once)."""
    members: dict[int, list[MtaConfig]] = {}  # group (its first MTA's index) -> its MTAs
    targets: dict[int, set[str]] = {}  # group -> its deploy targets
    group_of: dict[str, int] = {}  # deploy target -> its group
    for i, mta in enumerate(mtas):
        joined = sorted({group_of[t] for t in mta.deploy if t in group_of})
        group = joined[0] if joined else i
        members.setdefault(group, [])
        targets.setdefault(group, set()).update(mta.deploy)
        for other in joined[1:]:
            members[group] += members.pop(other)
            targets[group] |= targets.pop(other)
        members[group].append(mta)
        for t in targets[group] if len(joined) > 1 else mta.deploy:
            group_of[t] = group
    return list(members.values())


def several_hostnames_problem(rt: Runtime, name: str) -> str | None:
    """Why deploy target ``name`` cannot serve several hostnames from one instance, or None."""
    deployer = rt.providers.deployer(name)
    if isinstance(deployer, SeveralHostnames):
        return deployer.several_hostnames()
    return f"the {rt.config.deploys[name].type} deployer does not say it can choose a certificate by SNI"


def deploy_target(rt: Runtime, name: str) -> list[DeployReport]:
    """Install, verify and (on any failure) roll back every MTA of deploy target ``name`` as one unit.

    One MTA instance may serve several [[mta]] hostnames (``mx`` on 25 and ``submit`` on 587 of
    one Postfix): they get one request with every hostname's certificates, one reload, one
    verification (each hostname with SNI, the primary's certificate without) and one lease,
    so two deployments never reload the instance at once or undo each other's files.
    """
    units = [(m, pairs) for m in rt.config.target_mtas(name) if (pairs := current(rt, m))]
    if not units:
        return []
    owner = f"{rt.node}/deploy"
    lead = units[0][1][0][0]
    assert lead.id is not None
    # one claim per deploy target (on its primary's first slot): reloads of one MTA never interleave
    if not rt.claim(lead.id, owner, DEPLOY_LEASE_SECONDS):
        return [DeployReport(m.hostname, name, False, False, "another certmgr process is deploying it")
                for m, _ in units]
    try:
        return _deploy_unit(rt, name, units)
    finally:
        rt.store.release(lead.id, owner)


Unit = list[tuple[MtaConfig, list[tuple[ManagedCert, CertVersion]]]]


def _deploy_unit(rt: Runtime, name: str, units: Unit) -> list[DeployReport]:
    started = utcnow()
    if len(units) > 1 and (why := _safe_problem(rt, name)):
        reason = (f"[deploy.{name}] serves {', '.join(m.hostname for m, _ in units)}, but {why}; "
                  "nothing was deployed")
        return [_record(rt, m, name, pairs, started, "failed", reason, None) for m, pairs in units]
    hosts = tuple(HostBundles(m.hostname, tuple(bundle_for(s, v) for s, v in pairs),
                              VerifyTarget(m.smtp_host, m.smtp_port, m.probe_protocol, m.probe_implicit_tls))
                  for m, pairs in units)
    rollovers = {m.hostname: r for m, _ in units if (r := dane_gate.for_mta(rt, m)) is not None}
    gates = {h.hostname: rollovers[h.hostname].before_deploy(h.bundles, started) for h in hosts
             if h.hostname in rollovers}
    held = {h: g for h, g in gates.items() if not g.deploy}
    if held:
        result = "waiting" if all(g.waiting for g in held.values()) else "blocked"
        return [_record(rt, m, name, pairs, started, result,
                        held[m.hostname].reason if m.hostname in held else "not deployed: it is deployed together "
                        "with " + ", ".join(f"{h} ({g.reason})" for h, g in held.items()), None)
                for m, pairs in units]
    blocked = {m.hostname: why for (m, _), h in zip(units, hosts, strict=True)
               if m.hostname not in rollovers and (why := dane_problems(rt, m, h.bundles))}
    if blocked:
        return [_record(rt, m, name, pairs, started, "blocked",
                        blocked.get(m.hostname) or "not deployed: it is deployed together with "
                        + ", ".join(f"{h} ({w})" for h, w in blocked.items()), None)
                for m, pairs in units]
    primary = hosts[0]
    request = DeployRequest(primary.hostname, primary.bundles, primary.verify, hosts if len(hosts) > 1 else ())
    probe_fn = make_probe_fn(primary.hostname, trust_file=rt.config.settings.trust)
    for m, pairs in units:
        for slot, _ in pairs:
            assert slot.id is not None
            rt.store.update_slot(slot.id, state="deploying")
        rt.store.log("deploy_started", m.hostname, None, {"target": name, "serials": [v.serial for _, v in pairs]})
    try:
        deployer = rt.providers.deployer(name)
        outcome = deploy_and_verify(deployer, request, probe_fn)
    except CertmgrError as e:  # a provider that cannot even start (bad host, missing binary)
        outcome = DeployOutcome(target=name, ok=False, rolled_back=False, reason=str(e), served_sha256s={},
                                verified_at=None)
    except Exception as e:  # the per-deployment boundary: the slot never stays in "deploying"
        log.exception("%s: deploying to %s failed unexpectedly", primary.hostname, name)
        outcome = DeployOutcome(target=name, ok=False, rolled_back=False, served_sha256s={}, verified_at=None,
                                reason=f"{name}: internal error while deploying: {e.__class__.__name__}: {e}")
    checkpoint("deployed")
    if outcome.ok:
        for rollover in rollovers.values():
            rollover.after_deploy(utcnow())
    result = "verified" if outcome.ok else ("rolled_back" if outcome.rolled_back else "failed")
    reports = []
    for m, pairs in units:
        rt.store.log("deploy_served", m.hostname, None, {"target": name, "served": outcome.served_sha256s})
        reports.append(_record(rt, m, name, pairs, started, result, outcome.reason, outcome.verified_at,
                               target=f"{name}:{outcome.target}"))
    return reports


def _safe_problem(rt: Runtime, name: str) -> str | None:
    try:
        return several_hostnames_problem(rt, name)
    except CertmgrError as e:
        return str(e)


def _record(rt: Runtime, mta: MtaConfig, name: str, pairs: list[tuple[ManagedCert, CertVersion]],
            started: datetime, result: str, reason: str | None, verified_at: datetime | None,
            target: str | None = None) -> DeployReport:
    """Store one deployment outcome for every certificate of the MTA, and report it."""
    states = {"verified": "verified", "rolled_back": "rolled_back", "blocked": "deploy_blocked",
              "waiting": "deploy_waiting"}
    for slot, version in pairs:
        assert slot.id is not None and version.id is not None
        rt.store.add_deployment(Deployment(
            managed_id=slot.id, version_id=version.id, target=target or name, result=result,
            reason=reason, started_at=started, verified_at=verified_at,
        ))
        rt.store.update_slot(slot.id, state=states.get(result, "deploy_failed"),
                             last_error=None if result == "verified" else reason)
    rt.store.log(f"deploy_{result}", mta.hostname, None, {"target": name, "reason": reason})
    if result == "verified":
        log.info("%s: deployed to %s and verified over STARTTLS", mta.hostname, name)
        return DeployReport(mta.hostname, name, True, False, "served and verified over STARTTLS")
    if result == "waiting":
        log.info("%s: deployment to %s waits: %s", mta.hostname, name, reason)
        return DeployReport(mta.hostname, name, False, False, reason or result, waiting=True)
    log.warning("%s: deployment to %s %s: %s", mta.hostname, name, result.replace("_", " "), reason)
    return DeployReport(mta.hostname, name, False, result == "rolled_back", reason or result)


def dane_problems(rt: Runtime, mta: MtaConfig, bundles: tuple[CertBundle, ...]) -> str | None:
    """Why deploying ``bundles`` would break DANE for this MTA, or None.

    Senders look up TLSA at port 25 of the MX host.  When usable records are published
    and one of the new certificates matches none, deploying it would make DANE senders
    stop delivering: the old certificate stays, and the message names the record to publish.
    """
    if not mta.dane:
        return None
    records = dane.lookup(mta.hostname, 25, rt.config.settings.resolver)
    problems = []
    for b in bundles:
        chain = x509.load_pem_x509_certificates(b.cert_pem + b.chain_pem)
        problem = dane.check_chain(records, chain, mta.hostname, 25)
        if problem:
            problems.append(f"{b.key_alg.upper()}: {problem}")
    if not problems:
        return None
    return ("not deployed, DANE would break: " + "; ".join(problems)
            + f"; then run `certmgr deploy {mta.hostname}` (or set reuse_key = true to keep keys across renewals)")
