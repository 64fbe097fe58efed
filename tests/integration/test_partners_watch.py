"""Watching partners against a real partner Postfix that breaks between two checks:
the alert comes on the transition only, with the exact problem and the two choices;
metrics per partner."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import cast

import pytest

from certmgr.config.model import PartnerSpec
from certmgr.partners.check import CheckOptions, check_partners
from certmgr.partners.model import PartnerFacts
from certmgr.partners.watch import add_metrics, current_verdicts, degradations, record_of
from tests.peers.partners import PartnerWorld, partner_world
from tests.peers.postfix import chain_file_pem, postconf, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PartnerWorld]:
    with partner_world(tmp_path_factory.mktemp("watch"), defects=("good",)) as w:
        yield w


def _check(world: PartnerWorld, spec: PartnerSpec) -> list[PartnerFacts]:
    return check_partners([spec], CheckOptions(resolver=world.resolver, trust_file=world.trust_file, timeout=5))


def test_starttls_gone_alerts_once_with_the_problem_and_the_choices(world: PartnerWorld) -> None:
    spec = PartnerSpec(world.domain("good"), "verify", notify=("mailops",))
    now = datetime.now(UTC)
    first = _check(world, spec)
    assert degradations({}, first, [spec.domain], now) == []
    remembered = current_verdicts(first, now)
    assert remembered == {spec.domain: True}

    mta = world.mtas["good"]
    postconf(mta, "smtpd_tls_security_level = none")
    mta.reload()
    wait_until(lambda: not _check(world, spec)[0].addresses[0].probe.starttls,  # type: ignore[union-attr]
               what="STARTTLS gone after the reload")
    second = _check(world, spec)
    [alert] = degradations(remembered, second, [spec.domain], now)
    assert alert.notify == ("mailops",)
    assert alert.subject == f"[certmgr] mail to {spec.domain} is deferred: its MX no longer meets 'verify'"
    assert (f"- {world.mx('good')} ({mta.address}) does not offer STARTTLS: mail to {spec.domain} will be deferred "
            "under 'verify'\n") in alert.body
    assert "1. Wait for the partner to fix it" in alert.body
    assert f'2. Lower the level: set require = "encrypt" (or a level the partner meets) for {spec.domain}' in alert.body
    # told once: the next check, still broken, stays quiet; a partner not enforced never alerts
    assert degradations(current_verdicts(second, now), second, [spec.domain], now) == []
    assert degradations(remembered, second, [], now) == []


def test_expired_certificate_alerts_and_metrics_show_it(world: PartnerWorld) -> None:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.utils import floatToGoString

    spec = PartnerSpec(world.domain("good"), "verify")
    now = datetime.now(UTC)
    remembered = current_verdicts(_check(world, spec), now)
    mta = world.mtas["good"]
    mta.chain_files[0].write_bytes(chain_file_pem(world.ca.leaf(world.mx("good"), days=-1)))
    mta.reload()
    wait_until(lambda: not current_verdicts(_check(world, spec), now)[spec.domain], what="expired cert served")
    facts = _check(world, spec)
    [alert] = degradations(remembered, facts, [spec.domain], now)
    assert f"- {world.mx('good')} ({mta.address}) presents a certificate that expired on " in alert.body

    registry = CollectorRegistry()
    add_metrics(registry, [record_of(facts[0], True, now)])
    text = generate_latest(registry).decode()
    assert f'certmgr_partner_status{{domain="{spec.domain}",require="verify"}} 2.0' in text
    assert f'certmgr_partner_meets_level{{domain="{spec.domain}",require="verify"}} 0.0' in text
    assert f'certmgr_partner_enforced{{domain="{spec.domain}"}} 1.0' in text
    assert f'certmgr_partner_mx_failing{{domain="{spec.domain}"}} 1.0' in text
    probed = facts[0].addresses[0].probe
    assert probed is not None and probed.certificate is not None
    go_float = cast("Callable[[float], str]", floatToGoString)  # prometheus_client.utils has no annotations
    expiry = go_float(probed.certificate.not_after.timestamp())
    assert (f'certmgr_partner_certificate_not_after_timestamp_seconds{{address="{mta.address}",'
            f'domain="{spec.domain}",mx="{world.mx("good")}"}} {expiry}') in text, text
    lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
