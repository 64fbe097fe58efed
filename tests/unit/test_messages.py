"""Reminder, failure and success messages: content, escaping, the fix command, severity."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from certmgr.notify.cert_status import CertStatus, Deployed, NewCert
from certmgr.notify.renewal_messages import deploy_failure_message, failure_message, reminder_message
from certmgr.notify.success_message import success_message

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def facts(**changes: object) -> CertStatus:
    base = CertStatus(
        hostname="mx1.example.com", names=("mx1.example.com", "mail.example.com"), key_type="rsa-2048",
        issuer="letsencrypt", serial="04ab", not_after=datetime(2025, 3, 15, 8, 30, tzinfo=UTC),
        days_left=13, state="failed", last_error="dns: <NXDOMAIN> & friends", attempts=3,
        automatic=True, next_retry=NOW + timedelta(hours=2), config_path="/etc/certmgr/certmgr.toml",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_reminder_says_what_when_and_how_to_fix() -> None:
    m = reminder_message(facts(), 14, NOW)
    assert m.subject == "[certmgr] mx1.example.com: certificate expires in 13 days"
    assert m.hostname == "mx1.example.com" and m.severity == "warning"
    for needle in ("mx1.example.com, mail.example.com", "2025-03-15 08:30 UTC", "13 days left",
                   "14-day reminder", "letsencrypt", "3 failed", "dns: <NXDOMAIN> & friends",
                   "certmgr -c /etc/certmgr/certmgr.toml renew mx1.example.com --force"):
        assert needle in m.text, needle
    assert m.facts["kind"] == "reminder" and m.facts["threshold_days"] == 14
    assert m.facts["not_after"] == "2025-03-15T08:30:00+00:00"


def test_html_is_escaped() -> None:
    m = reminder_message(facts(last_error="<script>alert(1)</script>"), 14, NOW)
    assert m.html is not None
    assert "<script>" not in m.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in m.html
    assert "<script>alert(1)</script>" in m.text  # plain text stays literal


def test_manual_issuer_gets_csr_and_import_commands() -> None:
    m = reminder_message(facts(automatic=False, issuer="corporate"), 30, NOW)
    assert "certmgr -c /etc/certmgr/certmgr.toml csr mx1.example.com" in m.text
    assert "certmgr -c /etc/certmgr/certmgr.toml import mx1.example.com <certificate-file>" in m.text
    assert "--force" not in m.text
    assert "manual CA" in m.text


def test_config_path_is_shell_quoted() -> None:
    m = reminder_message(facts(config_path="/etc/cert mgr/x.toml"), 14, NOW)
    assert "certmgr -c '/etc/cert mgr/x.toml' renew mx1.example.com --force" in m.text


@pytest.mark.parametrize(
    ("days", "level", "severity"),
    [(30, 0, "warning"), (4, 0, "warning"), (3, 0, "critical"), (0, 0, "critical"), (-2, 0, "critical"),
     (30, 1, "critical"), (20, 2, "critical")],
)
def test_failure_severity(days: int, level: int, severity: str) -> None:
    m = failure_message(facts(days_left=days), "boom", level, NOW)
    assert m.severity == severity


def test_reminder_critical_at_three_days() -> None:
    assert reminder_message(facts(days_left=3), 3, NOW).severity == "critical"
    assert reminder_message(facts(days_left=7), 7, NOW).severity == "warning"


def test_failure_message_tells_error_retry_and_escalation() -> None:
    m = failure_message(facts(), "rateLimited: too many certificates", 2, NOW)
    assert "RENEWAL STILL FAILING (escalation 2)" in m.subject
    assert "rateLimited: too many certificates" in m.text
    assert "retries by itself at 2025-03-01 14:00 UTC" in m.text
    assert "stays in place" in m.text
    assert m.facts["escalation_level"] == 2 and m.facts["error"].startswith("rateLimited")


def test_expired_is_said_plainly() -> None:
    m = failure_message(facts(days_left=-2), "x", 0, NOW)
    assert "EXPIRED" in m.subject and "EXPIRED 2 days ago" in m.text


def new_facts(**changes: object) -> CertStatus:
    base: dict[str, object] = {
        "not_after": datetime(2025, 6, 1, tzinfo=UTC), "days_left": 92, "state": "verified", "last_error": None,
        "attempts": 0, "fullchain_path": "/var/lib/certmgr/mx1/fullchain.pem",
        "key_path": "/var/lib/certmgr/mx1/key.pem"}
    return facts(**{**base, **changes})


def test_success_message() -> None:
    old = datetime(2025, 3, 15, 8, 30, tzinfo=UTC)
    m = success_message([NewCert(new_facts(), "acme", old)], Deployed(("postfix",), {"postfix": ("verified", None)}),
                        NOW)
    assert m.severity == "info"
    assert m.subject == "[certmgr] mx1.example.com: certificate renewed, valid until 2025-06-01"
    assert "2025-03-15 08:30 UTC" in m.text and "--force" not in m.text
    assert "Deployed to postfix and verified" in m.text
    assert m.facts["fix_commands"] == []


WORDS = [
    # (id, how it came, deployment, words in the subject, words in the text, words never in it)
    ("renewed, no deploy target", ("acme", True), Deployed(),
     "certificate renewed, valid until 2025-06-01 - not deployed (no deploy target)",
     ["Not deployed anywhere", "no deploy target configured", "Install it yourself",
      "/var/lib/certmgr/mx1/fullchain.pem"], ["Deployed to", "renewed and deployed"]),
    ("first issuance", ("acme", False), Deployed(("postfix",), {"postfix": ("verified", None)}),
     "certificate issued, valid until", ["was issued", "Deployed to postfix and verified"], ["renewed"]),
    ("imported", ("import", True), Deployed(("postfix",)),
     "certificate imported, valid until 2025-06-01 - not deployed yet",
     ["was imported", "Not deployed yet to postfix", "deploy mx1.example.com"], ["renewed", "Deployed to"]),
    ("rolled back", ("acme", True), Deployed(("postfix",), {"postfix": ("rolled_back", "postfix -c: bad")}),
     "NOT deployed (deployment failed)",
     ["NOT in service", "Deployment to postfix was rolled back: postfix -c: bad", "deploy mx1.example.com"],
     ["Deployed to"]),
    ("blocked by DANE", ("acme", True), Deployed(("postfix",), {"postfix": ("blocked", "TLSA 3 1 1 mismatch")}),
     "NOT deployed (deployment failed)", ["was blocked before install: TLSA 3 1 1 mismatch"], ["Deployed to"]),
]


@pytest.mark.parametrize(("how", "deployed", "subject", "said", "unsaid"), [c[1:] for c in WORDS],
                         ids=[c[0] for c in WORDS])
def test_success_words_match_what_happened(how: tuple[str, bool], deployed: Deployed, subject: str,
                                           said: list[str], unsaid: list[str]) -> None:
    source, replaced = how
    old = datetime(2025, 3, 15, 8, 30, tzinfo=UTC) if replaced else None
    m = success_message([NewCert(new_facts(), source, old)], deployed, NOW)
    assert subject in m.subject, m.subject
    for words in said:
        assert words in m.text, words
    for words in unsaid:
        assert words not in m.text and words not in m.subject, words


def test_one_message_for_both_algorithms() -> None:
    rsa = new_facts(serial="0aaa")
    ecdsa = new_facts(serial="0bbb", key_type="ecdsa-p256", not_after=datetime(2025, 5, 30, tzinfo=UTC))
    m = success_message([NewCert(rsa, "acme", NOW), NewCert(ecdsa, "acme", NOW)],
                        Deployed(("postfix",), {"postfix": ("verified", None)}), NOW)
    assert m.subject == ("[certmgr] mx1.example.com: certificates (ecdsa, rsa) renewed, valid until 2025-05-30")
    assert "0aaa" in m.text and "0bbb" in m.text and "RSA serial" in m.text and "ECDSA serial" in m.text
    assert [c["serial"] for c in m.facts["certificates"]] == ["0bbb", "0aaa"]
    r = reminder_message([facts(serial="0aaa"), facts(serial="0bbb", key_type="ecdsa-p256")], 14, NOW)
    assert "certificates (rsa, ecdsa) expire in 13 days" in r.subject
    assert r.text.count("expires on") == 2


def test_no_certificate_yet() -> None:
    m = failure_message(facts(not_after=None, days_left=None, serial=None), "CA down", 0, NOW)
    assert "no certificate issued yet" in m.text and "none yet" in m.text
    assert m.severity == "warning"


def test_deploy_failure_says_why_and_how_to_deploy() -> None:
    reason = "not deployed, DANE would break: publish `3 1 1 ab<cd>` there"
    m = deploy_failure_message(facts(), reason, 0, NOW)
    assert "DEPLOYMENT FAILED" in m.subject and "mx1.example.com" in m.subject
    assert reason in m.text and "certmgr -c /etc/certmgr/certmgr.toml deploy mx1.example.com" in m.text
    assert "renew" not in m.text.split("To deploy it by hand:")[1]
    assert "ab&lt;cd&gt;" in (m.html or "") and "ab<cd>" not in (m.html or "")
    assert m.facts["kind"] == "deploy_failure"
    loud = deploy_failure_message(facts(days_left=40), reason, 2, NOW)
    assert "escalation 2" in loud.subject and loud.severity == "critical"


def test_permanent_failure_says_a_person_must_act_not_escalation() -> None:
    m = failure_message(facts(attempts=1), "urn:ietf:params:acme:error:rejectedIdentifier", 1, NOW, permanent=True)
    assert "RENEWAL FAILED (needs a person)" in m.subject and "escalation" not in m.subject
    assert "retrying alone does not help" in m.text and "retries by itself" not in m.text
    assert "Once the cause is fixed, renew it by hand:" in m.text and m.severity == "critical"


DEPLOY_WORDS = [
    ("rolled back", "rolled_back", ["was rolled back", "keeps serving the certificate it had"], ["cannot tell"]),
    ("blocked by DANE", "blocked", ["was blocked before install: nothing was changed", "keeps serving"],
     ["cannot tell"]),
    ("failed without rollback", "failed", ["failed, with no rollback recorded", "cannot tell whether",
                                           "certmgr -c /etc/certmgr/certmgr.toml check mx1.example.com"],
     ["keeps serving"]),
]


@pytest.mark.parametrize(("result", "said", "unsaid"), [c[1:] for c in DEPLOY_WORDS],
                         ids=[c[0] for c in DEPLOY_WORDS])
def test_deploy_failure_says_what_the_mta_serves(result: str, said: list[str], unsaid: list[str]) -> None:
    m = deploy_failure_message(facts(), "reload failed", 0, NOW,
                               Deployed(("postfix",), {"postfix": (result, "reload failed")}))
    for words in said:
        assert words in m.text, words
    for words in unsaid:
        assert words not in m.text, words


def test_reminder_says_why_an_automatic_certificate_was_not_renewed() -> None:
    failing = reminder_message(facts(attempts=4), 14, NOW)
    assert "renewals through the issuer 'letsencrypt' are failing (rsa: 4 failed attempts)" in failing.text
    stalled = reminder_message(facts(attempts=0, last_error=None, renew_at=NOW - timedelta(days=3)), 14, NOW)
    assert "should have renewed it through the issuer 'letsencrypt' from 2025-02-26 12:00 UTC" in stalled.text
    assert "`certmgr run`" in stalled.text
    for m in (failing, stalled):
        assert "renews it automatically" not in m.text, "not while it does not"
