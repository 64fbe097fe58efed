"""Which partners get an enforced TLS policy on which outbound MTA (pure).

A partner is enforced only when every address of every MX meets its level, or
when its config says ``force = true``.  Otherwise certmgr refuses: the partner's
current entry in the MTA's map stays exactly as it is (none if it had none), and
one sentence names each failing MX, why, and the two ways out.  A partner removed
from the config is in neither list, so the deployer drops it from the map.
Rendering the map is the deployer's (each MTA has its own format).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from certmgr.config.model import PartnerSpec
from certmgr.interfaces import Installed

#: (domain, level, match), what a deployer's ``install_tls_policy`` takes
Entry = tuple[str, str, tuple[str, ...]]


class TlsPolicyDeployer(Protocol):
    """A deployer that can install the outbound TLS policy for partner domains."""

    def install_tls_policy(self, entries: Sequence[Entry], keep: Sequence[str]) -> Installed | None:
        """Write, index, test, reload (undo on failure); None when nothing changed."""
        ...

    def tls_policy_domains(self) -> frozenset[str]:
        """The partner domains whose policy the MTA's map holds now."""
        ...

    def commit(self, installed: Installed) -> None:
        """The installed files are the ones to keep (a later failure puts these back)."""
        ...


@dataclass(frozen=True)
class TargetPlan:
    """What one deploy target gets."""

    target: str
    entries: tuple[Entry, ...]
    #: partners whose current entry stays as it is
    keep: tuple[str, ...]
    #: one sentence per refused partner
    refused: tuple[str, ...]


def refusal(spec: PartnerSpec, problems: Sequence[str]) -> str:
    return (f"not enforcing '{spec.require}' for {spec.domain} (its current policy stays): " + "; ".join(problems)
            + " — wait for the partner to fix it, lower `require`, or set `force = true`")


def plan(specs: Sequence[PartnerSpec], verdicts: Mapping[str, tuple[bool, Sequence[str]]],
         targets: Sequence[str]) -> list[TargetPlan]:
    """One plan per deploy target; ``verdicts``: domain → (every MX meets the level, problems)."""
    out = []
    for target in targets:
        entries: list[Entry] = []
        keep: list[str] = []
        refused: list[str] = []
        for spec in specs:
            if target not in spec.deploy:
                continue
            meets, problems = verdicts.get(spec.domain, (False, [f"{spec.domain} was not checked"]))
            if meets or spec.force:
                entries.append((spec.domain, spec.require, spec.match))
            else:
                keep.append(spec.domain)
                refused.append(refusal(spec, problems))
        out.append(TargetPlan(target, tuple(entries), tuple(keep), tuple(refused)))
    return out
