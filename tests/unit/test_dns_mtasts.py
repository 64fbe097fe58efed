"""MTA-STS policy: generated from the MX set, deployed to the web first, id bumped last,
enforce refused while an MX fails, TLS-RPT record."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from certmgr.dns.mtasts import (
    Policy,
    Published,
    Served,
    Step,
    Wanted,
    check_settings,
    decide,
    mx_matches,
    parse_policy,
    parse_txt_id,
    policy_from_mx,
    problems,
    tlsrpt_value,
)
from certmgr.errors import ConfigError

NOW = datetime(2026, 11, 30, 4, 20, tzinfo=UTC)
MX = ["mx1.example.test.", "MX2.example.test"]


def test_policy_text_round_trips_and_follows_the_mx_set() -> None:
    p = policy_from_mx("enforce", 604800, MX)
    assert p.mx == ("mx1.example.test", "mx2.example.test")
    assert p.text().startswith("version: STSv1\r\nmode: enforce\r\nmx: mx1.example.test\r\n")
    assert parse_policy(p.text()) == p
    assert parse_policy("version: STSv2\nmode: enforce\nmax_age: 1\n") is None
    assert policy_from_mx("testing", 86400, MX, ["*.example.test"]).mx == ("*.example.test",)


def test_wildcards_match_one_label() -> None:
    assert mx_matches("*.example.test", "mx1.example.test")
    assert not mx_matches("*.example.test", "a.mx1.example.test")
    assert not mx_matches("*.example.test", "example.test")
    assert mx_matches("mx1.example.test.", "MX1.example.test")


def test_settings_are_checked_naming_the_key() -> None:
    with pytest.raises(ConfigError) as e:
        check_settings("enforcing", 604800, table='mta_sts."example.test"')
    assert e.value.key == "mode"
    with pytest.raises(ConfigError) as e:
        check_settings("enforce", 60, table='mta_sts."example.test"')
    assert e.value.key == "max_age"


def test_txt_ids() -> None:
    assert parse_txt_id(["v=STSv1; id=20261130042000"]) == "20261130042000"
    assert parse_txt_id(["v=STSv1; id=a", "v=STSv1; id=b"]) is None  # ambiguous: senders ignore both
    assert parse_txt_id(["v=spf1 -all"]) is None
    assert tlsrpt_value(["mailto:tlsrpt@example.test"]) == "v=TLSRPTv1; rua=mailto:tlsrpt@example.test"


def test_sequence_web_first_then_id_then_tlsrpt() -> None:
    policy = policy_from_mx("testing", 86400, MX)
    wanted = Wanted(policy, "c1", rua=("mailto:tlsrpt@example.test",))
    rec = Published()
    nothing = Served(None, None, (), ())
    d = decide(rec, wanted, nothing, MX, {}, NOW)
    assert d.step is Step.DEPLOY_WEB
    rec = d.record
    assert decide(rec, wanted, nothing, MX, {}, NOW).step is Step.WAIT_SERVED
    old_web = Served(Policy("testing", ("mx1.example.test",), 86400).text(), "c0", ("v=STSv1; id=1",), ())
    assert decide(rec, wanted, old_web, MX, {}, NOW).step is Step.WAIT_SERVED  # never the id before the policy
    served = Served(policy.text(), "c1", ("v=STSv1; id=1",), ())
    d = decide(rec, wanted, served, MX, {}, NOW)
    assert d.step is Step.PUBLISH_ID and d.value == "v=STSv1; id=20261130042000"
    rec = d.record
    served = Served(policy.text(), "c1", (d.value,), ())
    d = decide(rec, wanted, served, MX, {}, NOW)
    assert d.step is Step.PUBLISH_TLSRPT
    served = Served(policy.text(), "c1", (f"v=STSv1; id={rec.policy_id}",), (d.value,))
    assert decide(rec, wanted, served, MX, {}, NOW).step is Step.IDLE
    # a renewed mta-sts certificate: deployed first, then a new, larger id
    renewed = Wanted(policy, "c2", wanted.rua)
    assert decide(rec, renewed, served, MX, {}, NOW).step is Step.DEPLOY_WEB
    d = decide(rec, renewed, Served(policy.text(), "c2", served.txt, served.tlsrpt), MX, {}, NOW)
    assert d.step is Step.PUBLISH_ID and d.record.policy_id == "20261130042001"


def test_enforce_is_refused_while_an_mx_fails() -> None:
    policy = policy_from_mx("enforce", 604800, ["mx1.example.test"])
    trouble = problems(policy, MX, {"mx1.example.test": "certificate expired"})
    assert trouble == ["MX mx1.example.test: certificate expired", "MX mx2.example.test matches no mx: pattern "
                       "of the policy"]
    d = decide(Published(), Wanted(policy, "c1"), Served(None, None, (), ()), MX,
               {"mx1.example.test": "certificate expired"}, NOW)
    assert d.step is Step.REFUSED and "mx2.example.test" in d.why
    testing = policy_from_mx("testing", 604800, ["mx1.example.test"])
    assert decide(Published(), Wanted(testing, "c1"), Served(None, None, (), ()), MX, {}, NOW).step \
        is Step.DEPLOY_WEB
