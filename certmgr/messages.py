"""Reminder, failure and success messages, built from plain facts.

Pure functions: the facts about one MTA certificate and ``now`` go in, a
:class:`~certmgr.interfaces.Message` comes out.  Every message says which MTA,
which names, when the certificate expires (UTC and days left), what certmgr
tried, the last error, and the exact command to fix it by hand — so the person
who reads it at 3 a.m. does not have to open the config to know what to do.
"""

from __future__ import annotations

import html
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from certmgr.interfaces import Message

#: at or below this many days left, every message is critical
CRITICAL_DAYS = 3


@dataclass(frozen=True)
class CertFacts:
    """What the messages, the calendar and the metrics need to know about one certificate."""

    hostname: str
    names: tuple[str, ...]
    key_type: str  # "rsa-2048", "ecdsa-p256", ... (or just "rsa" / "ecdsa")
    issuer: str  # the [issuer.NAME] this MTA uses
    serial: str | None  # hex; None before the first certificate
    not_after: datetime | None  # aware, UTC
    days_left: int | None
    state: str  # lifecycle state ("verified", "failed", ...)
    last_error: str | None
    attempts: int  # failed attempts since the last success
    automatic: bool  # False for manual-CA issuers (csr / import)
    next_retry: datetime | None
    config_path: str

    @property
    def key_alg(self) -> str:
        """"rsa" or "ecdsa": one certificate per algorithm and MTA."""
        return self.key_type.split("-", 1)[0].lower()


def fix_commands(facts: CertFacts) -> list[str]:
    """The shell commands a person runs to renew this certificate by hand."""
    cfg = shlex.quote(facts.config_path)
    host = shlex.quote(facts.hostname)
    if facts.automatic:
        return [f"certmgr -c {cfg} renew {host} --force"]
    return [
        f"certmgr -c {cfg} csr {host} > {shlex.quote(facts.hostname + '.csr')}",
        "# have the CA sign the CSR, then:",
        f"certmgr -c {cfg} import {host} <certificate-file>",
    ]


def severity_for(facts: CertFacts, *, escalated: bool = False) -> str:
    if escalated or (facts.days_left is not None and facts.days_left <= CRITICAL_DAYS):
        return "critical"
    return "warning"


def reminder_message(facts: CertFacts, threshold_days: int, now: datetime) -> Message:
    """The reminder sent when a certificate crosses ``threshold_days`` before expiry."""
    subject = f"[certmgr] {facts.hostname}: certificate expires in {_days(facts)}"
    intro = [
        f"The TLS certificate of the mail server {facts.hostname} expires {_when(facts)}.",
        f"This is the {threshold_days}-day reminder.",
    ]
    if facts.automatic:
        intro.append(
            f"certmgr renews it automatically through the issuer '{facts.issuer}'; "
            "this certificate has not been renewed yet."
        )
    else:
        intro.append(
            f"The issuer '{facts.issuer}' is a manual CA: someone has to request and import "
            "the new certificate."
        )
    return _build(
        facts, "reminder", subject, intro, severity_for(facts), now, {"threshold_days": threshold_days}
    )


def failure_message(facts: CertFacts, error: str, escalation_level: int, now: datetime) -> Message:
    """Renewal failed.  ``escalation_level`` 0 is the first notice; higher levels are critical."""
    tag = "RENEWAL FAILED"
    if escalation_level > 0:
        tag = f"RENEWAL STILL FAILING (escalation {escalation_level})"
    subject = f"[certmgr] {tag}: {facts.hostname}, certificate expires in {_days(facts)}"
    intro = [
        f"certmgr could not renew the TLS certificate of the mail server {facts.hostname}.",
        f"The current certificate stays in place and expires {_when(facts)}.",
        f"Error: {error}",
    ]
    if facts.next_retry is not None and facts.automatic:
        intro.append(f"certmgr retries by itself at {_utc(facts.next_retry)}.")
    extra = {"error": error, "escalation_level": escalation_level}
    severity = severity_for(facts, escalated=escalation_level > 0)
    return _build(facts, "failure", subject, intro, severity, now, extra)


def deploy_failure_message(facts: CertFacts, reason: str, escalation_level: int, now: datetime) -> Message:
    """A renewed certificate could not be put in service (rolled back, or blocked before install)."""
    tag = "DEPLOYMENT FAILED"
    if escalation_level > 0:
        tag = f"DEPLOYMENT STILL FAILING (escalation {escalation_level})"
    subject = f"[certmgr] {tag}: {facts.hostname} does not serve its new certificate"
    intro = [
        f"certmgr has a new certificate for the mail server {facts.hostname} but could not put it in service;",
        "the MTA keeps serving the certificate it had.",
        f"Reason: {reason}",
        "certmgr tries again by itself; once the cause is fixed, deploy it now with the command below.",
    ]
    cfg, host = shlex.quote(facts.config_path), shlex.quote(facts.hostname)
    extra = {"error": reason, "escalation_level": escalation_level}
    return _build(facts, "deploy_failure", subject, intro, severity_for(facts, escalated=escalation_level > 0),
                  now, extra, commands=[f"certmgr -c {cfg} deploy {host}"], commands_label="To deploy it by hand:")


def success_message(facts: CertFacts, old_not_after: datetime | None, now: datetime) -> Message:
    subject = f"[certmgr] {facts.hostname}: certificate renewed, valid until {_date(facts.not_after)}"
    intro = [f"The TLS certificate of the mail server {facts.hostname} was renewed and deployed."]
    if old_not_after is not None:
        intro.append(f"The previous certificate would have expired {_utc(old_not_after)}.")
    intro.append(f"The new one expires {_when(facts)}.")
    extra = {"old_not_after": old_not_after.isoformat() if old_not_after else None}
    return _build(facts, "success", subject, intro, "info", now, extra, show_fix=False)


@dataclass(frozen=True)
class ProbeFinding:
    """What one probe of an MTA found (a dual MTA is probed once per key algorithm)."""

    target: str  # "host:port", with the algorithm for dual MTAs
    status: str  # ok | warning | critical | unknown
    problems: tuple[str, ...]


def probe_message(hostname: str, kind: str, status: str, findings: list[ProbeFinding], since: datetime,
                  config_path: str, now: datetime) -> Message:
    """A probe of the MTA turned WARNING or CRITICAL (``probe:warning``, ``probe:critical[:N]``),
    or passes again (``probe:recovered``)."""
    cfg, host = shlex.quote(config_path), shlex.quote(hostname)
    problems = [p for f in findings for p in f.problems]
    if kind == "probe:recovered":
        subject = f"[certmgr] RECOVERED: {hostname} passes the TLS probe again"
        intro = [f"The mail server {hostname} serves a good certificate over TLS again.",
                 f"The problem was first seen at {_utc(since)}."]
        severity = "info"
    else:
        again = kind.startswith("probe:critical:")
        tag = f"PROBE {status.upper()}" + (" (STILL)" if again else "")
        subject = f"[certmgr] {tag}: {hostname}: {problems[0] if problems else 'the TLS probe fails'}"
        intro = [f"certmgr probed the mail server {hostname} as an anonymous client and found "
                 f"{'a problem' if len(problems) == 1 else 'problems'} that senders see too:"]
        intro += [f"- {p}" for p in problems]
        if again:
            intro.append(f"This has been so since {_utc(since)}; nobody has fixed it yet.")
        severity = "critical" if status == "critical" else "warning"
    rows = [(f.target, f"{f.status.upper()}" + (f": {'; '.join(f.problems)}" if f.problems else ""))
            for f in findings]
    command = f"certmgr -c {cfg} check {host}"
    text = [*intro, "", *(f"{k + ':':<24}{v}" for k, v in rows), "", "To probe it again by hand:", "",
            f"    {command}", "", f"-- certmgr, {_utc(now)}"]
    esc = html.escape
    table = "".join(f"<tr><th align='left'>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    page = (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{esc(subject)}</title></head>\n<body>\n"
            + "\n".join(f"<p>{esc(p)}</p>" for p in intro)
            + f"\n<table>{table}</table>\n<p>To probe it again by hand:</p><pre>{esc(command)}</pre>\n"
            + f"<p><small>certmgr, {esc(_utc(now))}</small></p>\n</body></html>\n")
    return Message(subject=subject, text="\n".join(text) + "\n", html=page, severity=severity, hostname=hostname,
                   facts={"kind": kind, "hostname": hostname, "status": status, "since": since.isoformat(),
                          "findings": [{"target": f.target, "status": f.status, "problems": list(f.problems)}
                                       for f in findings], "fix_commands": [command]})


def database_lost_message(node: str, what: str, state_dir: str, config_path: str, now: datetime) -> Message:
    """The daemon's database file was removed or replaced under it: it stopped."""
    cfg = shlex.quote(config_path)
    subject = f"[certmgr] DAEMON STOPPED on {node}: its database was removed or replaced"
    commands = [f"certmgr -c {cfg} recover", f"certmgr -c {cfg} status", "systemctl restart certmgr"]
    intro = [f"{what} while certmgr was running on {node}.",
             "The daemon stopped so that it does not order every certificate again on an empty inventory "
             "(new keys, broken DANE records). Until the inventory is rebuilt, every command that writes "
             "refuses to run.",
             f"The keys and certificates are still in {state_dir}; rebuild the inventory from them:"]
    text = [*intro, "", *(f"    {c}" for c in commands), "", f"-- certmgr, {_utc(now)}"]
    esc = html.escape
    page = (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{esc(subject)}</title></head>\n<body>\n"
            + "\n".join(f"<p>{esc(p)}</p>" for p in intro)
            + f"\n<pre>{esc(chr(10).join(commands))}</pre>\n<p><small>certmgr, {esc(_utc(now))}</small></p>\n"
            + "</body></html>\n")
    return Message(subject=subject, text="\n".join(text) + "\n", html=page, severity="critical", hostname=None,
                   facts={"kind": "database_lost", "node": node, "what": what, "fix_commands": commands})


# --------------------------------------------------------------------------


def _build(
    facts: CertFacts,
    kind: str,
    subject: str,
    intro: list[str],
    severity: str,
    now: datetime,
    extra: dict[str, Any],
    *,
    show_fix: bool = True,
    commands: list[str] | None = None,
    commands_label: str = "To renew it by hand:",
) -> Message:
    details = _details(facts)
    if commands is None:
        commands = fix_commands(facts) if show_fix else []
    text_parts = [*intro, "", *(f"{k + ':':<16}{v}" for k, v in details)]
    if commands:
        text_parts += ["", commands_label, "", *(f"    {c}" for c in commands)]
    text_parts += ["", f"-- certmgr, {_utc(now)}"]

    esc = html.escape
    rows = "".join(f"<tr><th align='left'>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in details)
    html_parts = [*(f"<p>{esc(p)}</p>" for p in intro), f"<table>{rows}</table>"]
    if commands:
        html_parts.append(f"<p>{esc(commands_label)}</p><pre>" + esc("\n".join(commands)) + "</pre>")
    html_parts.append(f"<p><small>certmgr, {esc(_utc(now))}</small></p>")
    body = "\n".join(html_parts)
    page = f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{esc(subject)}</title></head>\n"
    page += f"<body>\n{body}\n</body></html>\n"

    return Message(
        subject=subject,
        text="\n".join(text_parts) + "\n",
        html=page,
        severity=severity,
        hostname=facts.hostname,
        facts={**_facts_json(facts), "kind": kind, "fix_commands": commands, **extra},
    )


def _details(facts: CertFacts) -> list[tuple[str, str]]:
    rows = [
        ("MTA", facts.hostname),
        ("Names", ", ".join(facts.names) or facts.hostname),
        ("Key", facts.key_type),
        ("Issuer", facts.issuer + ("" if facts.automatic else " (manual CA)")),
        ("Serial", facts.serial or "none yet"),
        ("Expires", _when(facts)),
        ("State", facts.state),
        ("Attempts", f"{facts.attempts} failed since the last success"),
        ("Last error", facts.last_error or "none"),
    ]
    if facts.next_retry is not None:
        rows.append(("Next retry", _utc(facts.next_retry)))
    rows.append(("Config", facts.config_path))
    return rows


def _facts_json(facts: CertFacts) -> dict[str, Any]:
    return {
        "hostname": facts.hostname,
        "names": list(facts.names),
        "key_type": facts.key_type,
        "issuer": facts.issuer,
        "serial": facts.serial,
        "not_after": facts.not_after.isoformat() if facts.not_after else None,
        "days_left": facts.days_left,
        "state": facts.state,
        "last_error": facts.last_error,
        "attempts": facts.attempts,
        "automatic": facts.automatic,
        "next_retry": facts.next_retry.isoformat() if facts.next_retry else None,
    }


def _utc(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _date(when: datetime | None) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d") if when else "unknown"


def _days(facts: CertFacts) -> str:
    if facts.days_left is None:
        return "an unknown number of days"
    if facts.days_left < 0:
        return "0 days (EXPIRED)"
    return f"{facts.days_left} day" + ("" if facts.days_left == 1 else "s")


def _when(facts: CertFacts) -> str:
    if facts.not_after is None:
        return "(no certificate issued yet)"
    if facts.days_left is not None and facts.days_left < 0:
        return f"on {_utc(facts.not_after)} (already EXPIRED {-facts.days_left} days ago)"
    return f"on {_utc(facts.not_after)} ({_days(facts)} left)"

