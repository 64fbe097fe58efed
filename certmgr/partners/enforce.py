"""Apply partner verdicts to the outbound MTAs: each deploy target gets the TLS
policy for the partners that name it (see :mod:`certmgr.partners.policymap`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from certmgr.config.model import PARTNER_DEPLOYERS, Config, PartnerSpec, ProviderConfig
from certmgr.errors import CertmgrError
from certmgr.partners.assess import verdict
from certmgr.partners.check import CheckOptions, check_partners
from certmgr.partners.model import PartnerFacts
from certmgr.partners.policymap import TlsPolicyDeployer, plan


@dataclass(frozen=True)
class TargetOutcome:
    target: str
    #: the map was rewritten and the MTA reloaded
    changed: bool
    enforced: tuple[str, ...]
    refused: tuple[str, ...]
    #: why installing failed (the old map is back in place)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.refused


def enforce(facts: Sequence[PartnerFacts], deployers: Mapping[str, TlsPolicyDeployer],
            now: datetime) -> list[TargetOutcome]:
    """Install each target's policy; a target that fails is reported, the others still go."""
    verdicts = {f.spec.domain: verdict(f, now) for f in facts}
    outcomes = []
    for p in plan([f.spec for f in facts], verdicts, list(deployers)):
        try:
            installed = deployers[p.target].install_tls_policy(p.entries, p.keep)
        except CertmgrError as e:
            outcomes.append(TargetOutcome(p.target, False, (), p.refused, str(e)))
            continue
        if installed is not None:  # checked and reloaded: nothing further verifies a policy map
            deployers[p.target].commit(installed)
        outcomes.append(TargetOutcome(p.target, installed is not None, tuple(e[0] for e in p.entries), p.refused))
    return outcomes


def policy_targets(partners: Sequence[PartnerSpec], deploys: Mapping[str, ProviderConfig],
                   has_policy: Callable[[str], bool]) -> list[str]:
    """Targets to (re)write: those a partner names, and those holding a policy no partner names
    any more (so a removed partner leaves their map); never a target that never had one."""
    named = {t for p in partners for t in p.deploy}
    return [name for name, d in deploys.items()
            if d.type in PARTNER_DEPLOYERS and (name in named or has_policy(name))]


def apply_partners(cfg: Config, deployer: Callable[[str], Any], opts: CheckOptions,
                   now: datetime) -> list[TargetOutcome]:
    """Check every configured partner and install each outbound target's policy."""
    targets = policy_targets(cfg.partners, cfg.deploys, lambda name: bool(deployer(name).tls_policy_present()))
    if not targets:
        return []
    facts = check_partners(cfg.partners, opts) if cfg.partners else []
    return enforce(facts, {t: deployer(t) for t in targets}, now)
