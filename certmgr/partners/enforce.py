"""Apply partner verdicts to the outbound MTAs: each deploy target gets the TLS
policy for the partners that name it (see :mod:`certmgr.partners.policymap`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from certmgr.errors import CertmgrError
from certmgr.partners.assess import verdict
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
        outcomes.append(TargetOutcome(p.target, installed is not None, tuple(e[0] for e in p.entries), p.refused))
    return outcomes
