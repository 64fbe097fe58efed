"""What `renew` computes over the whole inventory stays linear in it: grouping MTAs into deploy
units, and deciding which need a deployment from one read of every deployment."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from certmgr.config.model import MtaConfig
from certmgr.deploy.orchestrate import deploy_units
from certmgr.lifecycle.renew import needs_deploy
from certmgr.store.deployments import DeployTry

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def mta(host: str, *deploy: str) -> MtaConfig:
    return MtaConfig(host, (), ("ecdsa-p256",), "corp", deploy)


def test_deploy_units_of_twenty_thousand_mtas_take_well_under_a_second_each_thousand() -> None:
    """Grouping compared every MTA with every group: minutes at 10,000 MTAs."""
    mtas = [mta(f"mx{i}.example", f"pf{i // 2}") for i in range(20_000)]
    mtas += [mta("submit.example", "pf0", "pf9999")]  # joins two groups made long before
    t0 = time.perf_counter()
    units = deploy_units(mtas)
    took = time.perf_counter() - t0
    assert len(units) == 9_999
    assert [m.hostname for m in units[0]] == ["mx0.example", "mx1.example", "mx19998.example", "mx19999.example",
                                              "submit.example"]
    assert took < 5.0, f"{took:.1f} s to group 20,001 MTAs"


def test_needs_deploy_from_the_deployments_read_once() -> None:
    m = mta("mx1.example", "pf")
    assert needs_deploy(m, [(1, 10)], {}, NOW), "never deployed"
    assert not needs_deploy(m, [(1, 10)], {(1, 10): [DeployTry("verified", NOW)]}, NOW)
    assert needs_deploy(m, [(1, 10)], {(1, 10): [DeployTry("waiting", NOW)]}, NOW), "waiting on DNS is no failure"
    failed = {(1, 10): [DeployTry("failed", NOW - timedelta(seconds=30))]}
    assert not needs_deploy(m, [(1, 10)], failed, NOW), "inside the back-off"
    assert needs_deploy(m, [(1, 10)], failed, NOW + timedelta(days=1)), "after the back-off"
    assert not needs_deploy(mta("mx2.example"), [(2, 20)], {}, NOW), "no deploy target"
