"""The messages about renewing one MTA's certificates: the reminder before expiry, a failed
renewal, and a renewed certificate that could not be put in service."""

from __future__ import annotations

import shlex
from datetime import datetime

from certmgr.interfaces import Message
from certmgr.notify.cert_status import Certs, Deployed, severity_for
from certmgr.notify.message_text import (
    alg_label,
    build_message,
    certs_word,
    days_words,
    expiry_words,
    sorted_certs,
    verb_for,
)
from certmgr.times import utc_text


def reminder_message(certs: Certs, threshold_days: int, now: datetime) -> Message:
    """The reminder sent when certificates of one MTA cross ``threshold_days`` before expiry."""
    all_ = sorted_certs(certs)
    facts = all_[0]
    subject = (f"[certmgr] {facts.hostname}: {certs_word(all_)} {verb_for(all_, 'expires', 'expire')} "
               f"in {days_words(facts)}")
    intro = [
        *(f"The {alg_label(f, all_)}TLS certificate of the mail server {f.hostname} "
          f"expires {expiry_words(f)}." for f in all_),
        f"This is the {threshold_days}-day reminder.",
    ]
    if facts.automatic:
        failing = [f for f in all_ if f.attempts > 0]
        if failing:
            intro.append(
                f"certmgr's renewals through the issuer '{facts.issuer}' are failing "
                f"({', '.join(f'{f.key_alg}: {f.attempts} failed attempts' for f in failing)}); "
                "the last error is below. Fix its cause, or renew by hand."
            )
        else:
            due = min((f.renew_at for f in all_ if f.renew_at is not None), default=None)
            intro.append(
                f"certmgr should have renewed it through the issuer '{facts.issuer}'"
                + (f" from {utc_text(due)}" if due else "")
                + " but has not tried: check that the daemon (`certmgr run`) is running and "
                "`certmgr status`."
            )
    else:
        intro.append(
            f"The issuer '{facts.issuer}' is a manual CA: someone has to request and import "
            "the new certificate."
        )
    return build_message(
        all_, "reminder", subject, intro, severity_for(facts), now, {"threshold_days": threshold_days}
    )


def failure_message(certs: Certs, error: str, escalation_level: int, now: datetime, *,
                    permanent: bool = False) -> Message:
    """Renewal failed.  ``escalation_level`` 0 is the first notice; higher levels are critical.

    ``permanent``: the error repeats until someone fixes its cause (the CA refused the
    name, ...): the message says so at once, whatever the number of attempts.
    """
    all_ = sorted_certs(certs)
    facts = all_[0]
    tag = "RENEWAL FAILED"
    if permanent:
        tag = ("RENEWAL FAILED" if max(f.attempts for f in all_) <= 1 else "RENEWAL STILL FAILING") + \
            " (needs a person)"
    elif escalation_level > 0:
        tag = f"RENEWAL STILL FAILING (escalation {escalation_level})"
    subject = f"[certmgr] {tag}: {facts.hostname}, {certs_word(all_)} {verb_for(all_, 'expires', 'expire')} " \
              f"in {days_words(facts)}"
    intro = [f"certmgr could not renew the {certs_word(all_)} of the mail server {facts.hostname}."]
    for f in all_:
        if f.not_after is None:
            intro.append(f"There is no {alg_label(f, all_)}certificate yet: the MTA has none to serve.")
        else:
            intro.append(f"The current {alg_label(f, all_)}certificate stays in place and expires {expiry_words(f)}.")
    intro.append(f"Error: {error}")
    label = "To renew it by hand:"
    if permanent:
        intro.append("This error repeats until someone fixes its cause: retrying alone does not help.")
        label = "Once the cause is fixed, renew it by hand:"
    elif facts.next_retry is not None and facts.automatic:
        intro.append(f"certmgr retries by itself at {utc_text(facts.next_retry)}.")
    extra = {"error": error, "escalation_level": escalation_level, "permanent": permanent}
    severity = severity_for(facts, escalated=escalation_level > 0 or permanent)
    return build_message(all_, "failure", subject, intro, severity, now, extra, commands_label=label)


def deploy_failure_message(certs: Certs, reason: str, escalation_level: int, now: datetime,
                           deployed: Deployed | None = None) -> Message:
    """A renewed certificate could not be put in service: rolled back, blocked before install,
    or failed without a rollback (then what the MTA serves is not known, and it says so)."""
    all_ = sorted_certs(certs)
    facts = all_[0]
    tag = "DEPLOYMENT FAILED"
    if escalation_level > 0:
        tag = f"DEPLOYMENT STILL FAILING (escalation {escalation_level})"
    new = "a new certificate" if len(all_) == 1 else f"new {certs_word(all_)}"
    subject = f"[certmgr] {tag}: {facts.hostname} does not serve its new {certs_word(all_)}"
    cfg, host = shlex.quote(facts.config_path), shlex.quote(facts.hostname)
    intro = [f"certmgr has {new} for the mail server {facts.hostname} but could not put "
             f"{'it' if len(all_) == 1 else 'them'} in service."]
    results = {t: r for t, r in (deployed.results if deployed else {}).items() if r[0] != "verified"}
    unknown = [t for t, (result, _) in results.items() if result == "failed"]
    for t, (result, why) in results.items():
        said = {"rolled_back": "was rolled back: the previous files were put back",
                "blocked": "was blocked before install: nothing was changed"}.get(
            result, "failed, with no rollback recorded")
        intro.append(f"Deployment to {t} {said}. {why or ''}".rstrip())
    if unknown:
        intro.append(f"certmgr cannot tell whether {facts.hostname} still serves its previous certificate: "
                     f"check it with `certmgr -c {cfg} check {host}` and the MTA's own logs.")
    else:
        intro.append(f"The MTA keeps serving the {certs_word(all_).split(' ')[0]} it had.")
    if not results:
        intro.append(f"Reason: {reason}")
    intro.append(f"certmgr tries again by itself; once the cause is fixed, deploy "
                 f"{'it' if len(all_) == 1 else 'them'} now with the command below.")
    extra = {"error": reason, "escalation_level": escalation_level}
    return build_message(all_, "deploy_failure", subject, intro, severity_for(facts, escalated=escalation_level > 0),
                  now, extra, commands=[f"certmgr -c {cfg} deploy {host}"], commands_label="To deploy it by hand:")
