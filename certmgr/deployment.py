"""Deploy an MTA's current certificates to its targets, verify, record.

The deployers install and roll back; :mod:`certmgr.deploying` proves over
STARTTLS that the new certificate is served.  This module picks what to deploy,
claims the work (so two processes never reload one MTA at once) and records
every deployment in the store.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from certmgr import policy
from certmgr.config import MtaConfig
from certmgr.deploying import DeployOutcome, deploy_and_verify, make_probe_fn
from certmgr.errors import CertmgrError
from certmgr.faults import checkpoint
from certmgr.interfaces import CertBundle, DeployRequest, VerifyTarget
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


def bundle_for(slot: ManagedCert, version: CertVersion) -> CertBundle:
    return CertBundle(
        hostname=slot.hostname,
        names=tuple(json.loads(version.names)),
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
    for m, slot in rt.select([mta.hostname]):
        version = rt.store.version(slot.current_version_id)
        if version is not None and m.hostname == mta.hostname:
            out.append((slot, version))
    return out


def needs_deploy(rt: Runtime, mta: MtaConfig, now: datetime) -> bool:
    """True when a current certificate has no verified deployment and the back-off allows a try."""
    if not mta.deploy:
        return False
    for slot, version in current(rt, mta):
        assert slot.id is not None
        tries = [d for d in rt.store.deployments(slot.id) if d.version_id == version.id]
        if any(d.result == "verified" for d in tries):
            continue
        if not tries:
            return True
        failures = len(tries)
        if now >= tries[0].started_at + policy.backoff_delay(failures):
            return True
    return False


def deploy_mta(rt: Runtime, mta: MtaConfig) -> list[DeployReport]:
    """Install the current certificates on every deploy target of ``mta`` and verify."""
    pairs = current(rt, mta)
    if not pairs or not mta.deploy:
        return []
    owner = f"{rt.node}/deploy"
    lead = pairs[0][0]
    assert lead.id is not None
    # one claim per MTA (on its first slot): reloads of one MTA never interleave
    if not rt.claim(lead.id, owner, DEPLOY_LEASE_SECONDS):
        return [DeployReport(mta.hostname, t, False, False, "another certmgr process is deploying it")
                for t in mta.deploy]
    try:
        bundles = tuple(bundle_for(s, v) for s, v in pairs)
        request = DeployRequest(mta.hostname, bundles, VerifyTarget(mta.smtp_host, mta.smtp_port))
        probe_fn = make_probe_fn(mta.hostname, trust_file=rt.config.settings.trust)
        reports = []
        for name in mta.deploy:
            reports.append(_deploy_one(rt, mta, name, request, probe_fn, pairs))
        return reports
    finally:
        rt.store.release(lead.id, owner)


def _deploy_one(rt: Runtime, mta: MtaConfig, name: str, request: DeployRequest, probe_fn: object,
                pairs: list[tuple[ManagedCert, CertVersion]]) -> DeployReport:
    started = utcnow()
    for slot, _ in pairs:
        assert slot.id is not None
        rt.store.update_slot(slot.id, state="deploying")
    rt.store.log("deploy_started", mta.hostname, None, {"target": name,
                                                       "serials": [v.serial for _, v in pairs]})
    try:
        deployer = rt.providers.deployer(name)
        outcome = deploy_and_verify(deployer, request, probe_fn)  # type: ignore[arg-type]
    except CertmgrError as e:  # a provider that cannot even start (bad host, missing binary)
        outcome = DeployOutcome(target=name, ok=False, rolled_back=False, reason=str(e), served_sha256s={},
                                verified_at=None)
    checkpoint("deployed")
    result = "verified" if outcome.ok else ("rolled_back" if outcome.rolled_back else "failed")
    for slot, version in pairs:
        assert slot.id is not None and version.id is not None
        rt.store.add_deployment(Deployment(
            managed_id=slot.id, version_id=version.id, target=f"{name}:{outcome.target}", result=result,
            reason=outcome.reason, started_at=started, verified_at=outcome.verified_at,
        ))
        rt.store.update_slot(slot.id, state=result if result != "failed" else "deploy_failed",
                             last_error=None if outcome.ok else outcome.reason)
    rt.store.log(f"deploy_{result}", mta.hostname, None, {"target": name, "reason": outcome.reason,
                                                          "served": outcome.served_sha256s})
    if outcome.ok:
        log.info("%s: deployed to %s and verified over STARTTLS", mta.hostname, name)
        return DeployReport(mta.hostname, name, True, False, "served and verified over STARTTLS")
    log.warning("%s: deployment to %s %s: %s", mta.hostname, name, result.replace("_", " "), outcome.reason)
    return DeployReport(mta.hostname, name, False, outcome.rolled_back, outcome.reason or result)
