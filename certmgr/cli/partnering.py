"""What `certmgr deploy` and `certmgr renew` do for [[partner]]: install each outbound
target's TLS policy (every MX must meet the level, or the old policy stays), and show it."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from certmgr.partners.enforce import TargetOutcome
from certmgr.runtime import Runtime


def apply(rt: Runtime) -> list[TargetOutcome]:
    from certmgr.partners.check import CheckOptions
    from certmgr.partners.enforce import apply_partners

    return apply_partners(rt.config, rt.providers.deployer, CheckOptions.from_settings(rt.config.settings),
                          datetime.now(UTC))


def result(p: TargetOutcome) -> str:
    if p.error:
        return "failed"
    if p.refused:
        return "refused"
    return "enforced" if p.changed else "unchanged"


def detail(p: TargetOutcome) -> str:
    return "; ".join(([p.error] if p.error else []) + list(p.refused)) or f"enforced: {', '.join(p.enforced) or 'none'}"


def as_json(outcomes: list[TargetOutcome]) -> list[dict[str, Any]]:
    """The partner rows of the `--json` arrays (``hostname`` "partners")."""
    return [{**asdict(p), "hostname": "partners"} for p in outcomes]
