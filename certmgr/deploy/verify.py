"""Deploy a certificate and prove the MTA serves it; roll back when it does not.

``install`` -> probe every verify target (once per key algorithm when the MTA
holds dual RSA+ECDSA certificates; for a target serving several hostnames, each
one with its SNI name and every endpoint without SNI, which must serve the
primary's certificate) -> compare the served leaf's SHA-256 with the
bundle's.  A reload is asynchronous (Postfix hands it to its master, Exim
restarts), so a mismatch is probed again a few times before it counts.  On a
failed install the deployer has already restored the previous files; on a
failed verification this module calls ``rollback``, on a verified one ``commit`` (for a
deployer that keeps in-flight state, :class:`~certmgr.interfaces.Committing`).  Nothing is recorded here:
the caller stores the :class:`DeployOutcome`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from certmgr.errors import CertmgrError, DeployError
from certmgr.faults import checkpoint
from certmgr.interfaces import CertBundle, Committing, Deployer, DeployRequest, Installed, VerifyTarget
from certmgr.probe.client import ProbeResult, probe

log = logging.getLogger("certmgr.deploy")

#: probe one target, optionally forcing the key algorithm the server must use
ProbeFn = Callable[[VerifyTarget, str | None], ProbeResult]


@dataclass(frozen=True)
class DeployOutcome:
    target: str
    ok: bool
    rolled_back: bool
    reason: str | None
    #: "host:port/alg" -> SHA-256 served at the last probe
    served_sha256s: dict[str, str | None]
    verified_at: datetime | None


def make_probe_fn(servername: str | None, *, trust_file: Path | None = None,
                  timeout: float = 10.0) -> ProbeFn:
    """The real STARTTLS probe, bound to the MTA's name (for SNI) unless the target names its own."""

    def run(target: VerifyTarget, key_alg: str | None) -> ProbeResult:
        sni = servername if target.servername is None else target.servername
        return probe(target.host, target.port, protocol=target.protocol, implicit_tls=target.implicit_tls,
                     servername=sni, trust_file=trust_file, timeout=timeout, key_alg=key_alg)

    return run


def _served(result: ProbeResult) -> str | None:
    return result.certificate.sha256 if result.certificate else None


def _where(target: VerifyTarget) -> str:
    sni = "" if target.servername is None else f" with SNI {target.servername}" if target.servername else \
        " without SNI"
    return f"{target.host}:{target.port}{sni}"


def _expected(request: DeployRequest, target: VerifyTarget) -> tuple[CertBundle, ...]:
    """What ``target`` must serve: the named host's certificates, else the primary's (the default)."""
    for host in request.all_hosts:
        if host.hostname == target.servername:
            return host.bundles
    return request.bundles


def _verify_one(probe_fn: ProbeFn, target: VerifyTarget, bundle: CertBundle, key_alg: str | None,
                attempts: int, delay: float, sleep: Callable[[float], None]) -> tuple[str | None, str | None]:
    """(served sha256, problem or None when the new certificate is served)."""
    served: str | None = None
    problem: str | None = None
    for attempt in range(attempts):
        if attempt:
            sleep(delay)
        try:
            result = probe_fn(target, key_alg)
        except CertmgrError as e:  # e.g. an unusable trust file: not verified, so it is rolled back
            return None, f"{_where(target)} could not be probed: {e}"
        served = _served(result)
        if served == bundle.sha256:
            return served, None
        where = _where(target) + (f" ({key_alg})" if key_alg else "")
        if served is None:
            problem = f"{where} could not be probed: {result.error or 'no certificate served'}"
        else:
            problem = (f"{where} still serves the certificate with SHA-256 {served[:16]}…, "
                       f"not the new one ({bundle.sha256[:16]}…)")
    return served, problem


def deploy_and_verify(
    deployer: Deployer,
    request: DeployRequest,
    probe_fn: ProbeFn,
    *,
    attempts: int = 5,
    delay: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> DeployOutcome:
    """Install ``request`` with ``deployer`` and check what is served; never raises DeployError."""
    try:
        installed = deployer.install(request)
    except DeployError as e:
        # the deployer restored the previous files before raising
        where = str(getattr(deployer, "target", request.hostname))
        return DeployOutcome(target=where, ok=False, rolled_back=True, reason=str(e), served_sha256s={},
                             verified_at=None)
    checkpoint("installed")
    served: dict[str, str | None] = {}
    problems: list[str] = []
    try:
        for target in installed.verify:
            bundles = _expected(request, target)
            for bundle in bundles:
                key_alg = bundle.key_alg if len(bundles) > 1 else None
                sha, problem = _verify_one(probe_fn, target, bundle, key_alg, attempts, delay, sleep)
                served[f"{_where(target)}/{bundle.key_alg}"] = sha
                if problem:
                    problems.append(problem)
    except Exception as e:  # the per-deployment boundary: unverified new files are never left in place
        problems.append(f"the verification failed unexpectedly ({e.__class__.__name__}: {e})")
    if not problems:
        _commit(deployer, installed)
        return DeployOutcome(target=installed.target, ok=True, rolled_back=False, reason=None,
                             served_sha256s=served, verified_at=datetime.now(UTC))
    names = ", ".join(h.hostname for h in request.all_hosts)
    reason = f"{installed.target}: the new certificate for {names} is not served: " + "; ".join(problems)
    try:
        deployer.rollback(installed)
    except DeployError as e:
        return DeployOutcome(target=installed.target, ok=False, rolled_back=False,
                             reason=f"{reason}; rolling back failed too: {e}", served_sha256s=served,
                             verified_at=None)
    return DeployOutcome(target=installed.target, ok=False, rolled_back=True,
                         reason=f"{reason}; the previous certificate was put back", served_sha256s=served,
                         verified_at=None)


def _commit(deployer: Deployer, installed: Installed) -> None:
    """Tell a deployer that keeps state that its files are verified.  Failing here loses
    nothing that is served; the next deployment of the target then keeps the older backup."""
    if not isinstance(deployer, Committing):
        return
    try:
        deployer.commit(installed)
    except (DeployError, OSError) as e:
        log.warning("%s: the new certificate is served, but settling the deployment failed: %s",
                    installed.target, e)
