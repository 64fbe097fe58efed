"""MTA-STS inside `certmgr renew` (and the daemon's renew job), one ``[mta_sts."domain"]`` at a time.

For each domain: the ``mta-sts.<domain>`` certificate is issued through the table's
``issuer`` when there is none, when it is inside its renewal window (the same rule as every
managed certificate) or with ``--force``; then the engine (:mod:`certmgr.dns.mtasts_run`)
runs its steps until it is idle or must wait: policy and certificate onto the ``web``
deploy target and served over HTTPS, **only then** the ``_mta-sts`` id, then the
``_smtp._tls`` record.  An ``enforce`` policy while an MX fails is refused (the published
policy and id stay).  Crash checkpoints are ``mta-sts-<step>`` (``CERTMGR_CRASH_AFTER``).
"""

from __future__ import annotations

import logging
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from certmgr.dns.dane_run import make_csr
from certmgr.dns.mtasts import Step
from certmgr.dns.mtasts_run import DeployerWeb, MtaStsDomain
from certmgr.dns.settings import MtaStsSettings
from certmgr.errors import CertmgrError
from certmgr.faults import checkpoint
from certmgr.interfaces import CertRequest, IssueContext
from certmgr.lifecycle import policy
from certmgr.lifecycle.issue import ISSUE_TIMEOUT, Outcome
from certmgr.lifecycle.versions import check_chain
from certmgr.pki.certs import dns_names
from certmgr.pki.names import covers
from certmgr.probe.client import probe
from certmgr.probe.dns import resolve
from certmgr.runtime import Runtime
from certmgr.store import utcnow

log = logging.getLogger("certmgr.mta-sts")

KEY_TYPE = "ecdsa-p256"
#: steps one run carries out at most (a converging domain needs four or five)
MAX_STEPS = 8


def mx_problem(rt: Runtime, host: str) -> str | None:
    """Why a sender enforcing the policy could not deliver to ``host`` (None when it can):
    no address, no STARTTLS on port 25, a certificate that does not verify or cover it."""
    settings = rt.config.settings
    facts = resolve(host, settings.resolver)
    if not facts.addresses:
        return facts.problem or f"{host} has no address"
    for address in facts.addresses:
        r = probe(address, 25, servername=host, trust_file=settings.trust, timeout=10)
        if r.certificate is None:
            return f"{address}:25: {r.error or 'no certificate'}"
        if not r.certificate.chain_valid:
            return f"{address}:25: certificate does not verify ({r.certificate.chain_error})"
        if not covers(r.certificate.names, host):
            return f"{address}:25: certificate does not cover {host}"
    return None


def for_domain(rt: Runtime, sts: MtaStsSettings) -> MtaStsDomain:
    """The engine of one ``[mta_sts."domain"]``, wired to the runtime's providers."""
    settings = rt.config.settings

    def issue(key_type: str, key_pem: bytes, names: tuple[str, ...]) -> bytes:
        issuer = rt.providers.issuer(sts.issuer)
        ctx = IssueContext(hostname=names[0], load_account=lambda: rt.load_account(sts.issuer),
                           save_account=rt.save_account, timeout=ISSUE_TIMEOUT)
        issued = issuer.issue(CertRequest(names[0], names, key_type, make_csr(key_pem, names)), ctx)
        key = serialization.load_pem_private_key(key_pem, None)
        assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
        check_chain(issued.fullchain_pem, key, names, names[0], where=f"certificate from issuer {sts.issuer}",
                    now=utcnow())
        return issued.fullchain_pem

    web = rt.providers.web_target(sts.web, f'mta_sts."{sts.domain}"')
    return MtaStsDomain(
        state_dir=settings.state_dir, store=rt.store, owner=rt.node,
        domain=sts.domain, publisher=rt.providers.dns(sts.dns), issue=issue,
        web=DeployerWeb(web, sts.domain, KEY_TYPE), mode=sts.mode, max_age=sts.max_age, mx_patterns=sts.mx, rua=sts.rua,
        key_type=KEY_TYPE, resolver=settings.resolver, trust_file=settings.trust,
        mx_check=lambda host: mx_problem(rt, host), checkpoint=lambda name: checkpoint(f"mta-sts-{name}"),
    )


def certificate_due(engine: MtaStsDomain, now: datetime) -> str | None:
    """Why the ``mta-sts.<domain>`` certificate needs issuing now, or None."""
    pem = engine.certificate_file
    if not pem.exists():
        return "no certificate yet"
    data = pem.read_bytes()
    leaf = x509.load_pem_x509_certificates(data[data.index(b"-----BEGIN CERTIFICATE"):])[0]
    if set(dns_names(leaf)) != {f"mta-sts.{engine.domain}"}:
        return "names changed"
    facts = policy.RenewalFacts(not_before=leaf.not_valid_before_utc, not_after=leaf.not_valid_after_utc)
    if policy.is_due(policy.renewal_time(facts, jitter_key=f"mta-sts.{engine.domain}"), now):
        return "inside the renewal window"
    return None


def renew_domain(rt: Runtime, sts: MtaStsSettings, *, force: bool, dry_run: bool) -> list[Outcome]:
    host = f"mta-sts.{sts.domain}"
    out: list[Outcome] = []
    try:
        engine = for_domain(rt, sts)
        why = "forced" if force else certificate_due(engine, utcnow())
        if dry_run:
            return [Outcome(host, "ecdsa", "would-renew" if why else "not-due", why or "")]
        if why:
            engine.renew_certificate()
            out.append(Outcome(host, "ecdsa", "issued", why))
        steps: list[str] = []
        for _ in range(MAX_STEPS):
            d = engine.step(utcnow())
            if d.step is Step.REFUSED:
                return [*out, Outcome(host, "all", "mta-sts-refused", d.why)]
            if d.step is Step.IDLE:
                break
            steps.append(d.step.value)
            if d.step is Step.WAIT_SERVED:
                return [*out, Outcome(host, "all", "mta-sts-waiting", d.why)]
        if steps:
            pid = engine.load().policy_id
            out.append(Outcome(host, "all", "mta-sts", f"{', '.join(steps)}; id {pid}"))
        return out
    except CertmgrError as e:
        return [*out, Outcome(host, "all", "failed", f"MTA-STS {sts.domain}: {e}")]


def renew_domains(rt: Runtime, *, force: bool = False, dry_run: bool = False) -> list[Outcome]:
    """Every ``[mta_sts."domain"]`` of the config, in turn."""
    out: list[Outcome] = []
    for sts in rt.config.mta_sts.values():
        out += renew_domain(rt, sts, force=force, dry_run=dry_run)
    return out
