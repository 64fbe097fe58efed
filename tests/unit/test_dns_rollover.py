"""TLSA rollover policy: current + next, deploy only after 2 x TTL on every server,
retire after the old TTL, cap on the RRset, resumable from its record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from certmgr.dns.rollover import (
    Rollover,
    Step,
    begin,
    decide,
    deployed,
    ee_record,
    hierarchy_warning,
    parse_usage,
    records_for_chain,
    ta_record,
    wanted,
)
from certmgr.errors import ConfigError, PermanentError
from tests.peers.testca import TestCA, make_key

T0 = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)
A, B, C = ("3 1 1 " + c * 64 for c in "abc")


def _s(sec: int) -> datetime:
    return T0 + timedelta(seconds=sec)


def test_usage_parsing_names_the_key() -> None:
    assert parse_usage("3 1 1", table="mta.mx1") == ("3 1 1",)
    assert parse_usage("3  1 1 + 2 1 1", table="mta.mx1") == ("3 1 1", "2 1 1")
    for bad in ("3 0 1", "", "3 1 1 + 3 1 1", "1 1 1"):
        with pytest.raises(ConfigError) as e:
            parse_usage(bad, table="mta.mx1")
        assert e.value.table == "mta.mx1" and e.value.key == "dane"


def test_full_rollover_waits_two_ttl_everywhere_then_deploys_then_retires() -> None:
    st = Rollover("mx1.example.test", ttl=60, current=(A,), next=(B,))
    d = decide(st, [], frozenset(), _s(0))
    assert d.step is Step.PUBLISH and set(d.records) == {A, B}
    # renewal with a key that was not generated ahead (C): publish, wait, deploy
    st = begin(st, [C], _s(0))
    d = decide(st, [A, B], frozenset({A, B}), _s(1))
    assert d.step is Step.PUBLISH and set(d.records) == {A, B, C}
    d = decide(st, [A, B, C], frozenset({A, B}), _s(2))  # a secondary lags
    assert d.step is Step.WAIT_VISIBLE and not d.late
    st = d.state
    d = decide(st, [A, B, C], frozenset({A, B, C}), _s(10))
    assert d.step is Step.WAIT_TTL and d.until == _s(130)
    st = d.state
    d = decide(st, [A, B, C], frozenset({A, B}), _s(50))  # a server lost it: the clock restarts
    assert d.step is Step.WAIT_VISIBLE
    st = d.state
    assert decide(st, [A, B, C], frozenset({A, B, C}), _s(60)).until == _s(180)
    st = decide(st, [A, B, C], frozenset({A, B, C}), _s(60)).state
    assert decide(st, [A, B, C], frozenset({A, B, C}), _s(179)).step is Step.WAIT_TTL
    assert decide(st, [A, B, C], frozenset({A, B, C}), _s(180)).step is Step.DEPLOY
    st = deployed(st, ["3 1 1 " + "d" * 64], _s(181))
    assert st.current == (C,) and st.retiring == (A,) and st.pending == ()
    d = decide(st, [A, B, C], frozenset({A, B, C}), _s(182))
    assert d.step is Step.PUBLISH and set(d.records) == {C, "3 1 1 " + "d" * 64, A}
    pub = set(d.records)
    assert decide(st, pub, frozenset(pub), _s(200)).step is Step.IDLE  # old TTL not over
    d = decide(st, pub, frozenset(pub), _s(241))
    assert d.step is Step.RETIRE and set(d.records) == {C, "3 1 1 " + "d" * 64}


def test_a_key_generated_ahead_deploys_without_waiting_again() -> None:
    st = Rollover("mx1.example.test", ttl=60, current=(A,), next=(B,))
    st = decide(st, [A, B], frozenset({A, B}), _s(0)).state  # next visible since 0
    st = begin(st, [B], _s(500))
    assert decide(st, [A, B], frozenset({A, B}), _s(500)).step is Step.DEPLOY


def test_waiting_longer_than_expected_is_flagged() -> None:
    st = begin(Rollover("mx1.example.test", ttl=60, current=(A,)), [B], _s(0))
    assert decide(st, [A, B], frozenset({A}), _s(3601), expected_wait=timedelta(hours=1)).late


def test_the_rrset_never_exceeds_the_cap() -> None:
    st = Rollover("mx1.example.test", max_records=2, current=(A,), next=(B,), retiring=(C,))
    with pytest.raises(PermanentError, match="3 records, more than max_records = 2"):
        decide(st, [], frozenset(), T0)
    assert len(wanted(Rollover("mx1.example.test", current=(A,), next=(A.upper(),)))) == 1


def test_state_survives_a_restart_as_json() -> None:
    st = begin(Rollover("mx1.example.test", ttl=60, current=(A,), next=(B,)), [C], _s(0))
    st = decide(st, [A, B, C], frozenset({A, B, C}), _s(5)).state
    again = Rollover.from_json(st.to_json())
    assert again == st
    assert decide(again, [A, B, C], frozenset({A, B, C}), _s(125)).step is Step.DEPLOY
    assert begin(again, [C], _s(100)) is again  # resuming the same issuance keeps the clock


def test_dual_keys_and_trust_anchors() -> None:
    ca = TestCA()
    from cryptography import x509

    rsa = ca.leaf("mx1.example.test", key_type="rsa-2048")
    ec = ca.leaf("mx1.example.test", key_type="ecdsa-p256")
    chains = [[x509.load_pem_x509_certificate(b.cert_pem), ca.inter] for b in (rsa, ec)]
    needs = [r for ch in chains for r in records_for_chain(ch, ("3 1 1", "2 1 1"))]
    assert len(set(needs)) == 3  # two keys, one intermediate
    assert ee_record(chains[0][0].public_key()).startswith("3 1 1 ")
    st = Rollover("mx1.example.test", trust_anchors=(ta_record(ca.inter),))
    assert hierarchy_warning(chains[0], st) is None
    other = TestCA("another ca")
    leaf = x509.load_pem_x509_certificate(other.leaf("mx1.example.test").cert_pem)
    warning = hierarchy_warning([leaf, other.inter], st)
    assert warning and "no published 2 1 1 record pins" in warning
    assert ee_record(make_key("ecdsa-p256").public_key()) not in needs
