"""Reminder, failure and success messages, built from plain facts.

Pure functions: the facts about one MTA's certificates and ``now`` go in, a
:class:`~certmgr.interfaces.Message` comes out.  One message covers every
certificate of the MTA the event concerns (RSA and ECDSA together), and says
what happened in words that match it (renewed, issued or imported; deployed,
not deployed, deployment failed).  Every message says which MTA,
which names, when the certificate expires (UTC and days left), what certmgr
tried, the last error, and the exact command to fix it by hand — so the person
who reads it at 3 a.m. does not have to open the config to know what to do.
"""

from __future__ import annotations

import html
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from certmgr.interfaces import Message
from certmgr.times import utc_text

#: at or below this many days left, every message is critical
CRITICAL_DAYS = 3


@dataclass(frozen=True)
class CertStatus:
    """Where one managed certificate stands (state, expiry, errors): what the messages and the
    calendar say about it.  What a certificate itself says is :class:`certmgr.pki.certs.CertFacts`."""

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
    #: where the certificate's files are, for a person who installs them by hand
    fullchain_path: str | None = None
    key_path: str | None = None
    #: when certmgr means to renew it (None: not known, or not automatic)
    renew_at: datetime | None = None

    @property
    def key_alg(self) -> str:
        """"rsa" or "ecdsa": one certificate per algorithm and MTA."""
        return self.key_type.split("-", 1)[0].lower()


#: one certificate, or all those of one MTA that a message is about
Certs = CertStatus | Sequence[CertStatus]


@dataclass(frozen=True)
class NewCert:
    """One new certificate of a success notice: how it came and what it replaced."""

    facts: CertStatus
    source: str = "acme"  # acme | import
    replaced_not_after: datetime | None = None  # None: the first certificate of this MTA and algorithm


@dataclass(frozen=True)
class Deployed:
    """Where the new certificates of an MTA went: per configured target, its last result."""

    targets: tuple[str, ...] = ()  # the MTA's deploy targets; () = none configured
    #: target -> (verified | rolled_back | failed | blocked, reason); a target missing: not tried yet
    results: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)

    @property
    def settled(self) -> bool:
        """Nothing left to wait for: no target, or a result from every one."""
        return all(t in self.results for t in self.targets)


def fix_commands(facts: CertStatus) -> list[str]:
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


def severity_for(facts: CertStatus, *, escalated: bool = False) -> str:
    if escalated or (facts.days_left is not None and facts.days_left <= CRITICAL_DAYS):
        return "critical"
    return "warning"


def reminder_message(certs: Certs, threshold_days: int, now: datetime) -> Message:
    """The reminder sent when certificates of one MTA cross ``threshold_days`` before expiry."""
    all_ = _sorted(certs)
    facts = all_[0]
    subject = f"[certmgr] {facts.hostname}: {_what(all_)} {_verb(all_, 'expires', 'expire')} in {_days(facts)}"
    intro = [
        *(f"The {_label(f, all_)}TLS certificate of the mail server {f.hostname} expires {_when(f)}."
          for f in all_),
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
    return _build(
        all_, "reminder", subject, intro, severity_for(facts), now, {"threshold_days": threshold_days}
    )


def failure_message(certs: Certs, error: str, escalation_level: int, now: datetime, *,
                    permanent: bool = False) -> Message:
    """Renewal failed.  ``escalation_level`` 0 is the first notice; higher levels are critical.

    ``permanent``: the error repeats until someone fixes its cause (the CA refused the
    name, ...): the message says so at once, whatever the number of attempts.
    """
    all_ = _sorted(certs)
    facts = all_[0]
    tag = "RENEWAL FAILED"
    if permanent:
        tag = ("RENEWAL FAILED" if max(f.attempts for f in all_) <= 1 else "RENEWAL STILL FAILING") + \
            " (needs a person)"
    elif escalation_level > 0:
        tag = f"RENEWAL STILL FAILING (escalation {escalation_level})"
    subject = f"[certmgr] {tag}: {facts.hostname}, {_what(all_)} {_verb(all_, 'expires', 'expire')} " \
              f"in {_days(facts)}"
    intro = [f"certmgr could not renew the {_what(all_)} of the mail server {facts.hostname}."]
    for f in all_:
        if f.not_after is None:
            intro.append(f"There is no {_label(f, all_)}certificate yet: the MTA has none to serve.")
        else:
            intro.append(f"The current {_label(f, all_)}certificate stays in place and expires {_when(f)}.")
    intro.append(f"Error: {error}")
    label = "To renew it by hand:"
    if permanent:
        intro.append("This error repeats until someone fixes its cause: retrying alone does not help.")
        label = "Once the cause is fixed, renew it by hand:"
    elif facts.next_retry is not None and facts.automatic:
        intro.append(f"certmgr retries by itself at {utc_text(facts.next_retry)}.")
    extra = {"error": error, "escalation_level": escalation_level, "permanent": permanent}
    severity = severity_for(facts, escalated=escalation_level > 0 or permanent)
    return _build(all_, "failure", subject, intro, severity, now, extra, commands_label=label)


def deploy_failure_message(certs: Certs, reason: str, escalation_level: int, now: datetime,
                           deployed: Deployed | None = None) -> Message:
    """A renewed certificate could not be put in service: rolled back, blocked before install,
    or failed without a rollback (then what the MTA serves is not known, and it says so)."""
    all_ = _sorted(certs)
    facts = all_[0]
    tag = "DEPLOYMENT FAILED"
    if escalation_level > 0:
        tag = f"DEPLOYMENT STILL FAILING (escalation {escalation_level})"
    new = "a new certificate" if len(all_) == 1 else f"new {_what(all_)}"
    subject = f"[certmgr] {tag}: {facts.hostname} does not serve its new {_what(all_)}"
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
        intro.append(f"The MTA keeps serving the {_what(all_).split(' ')[0]} it had.")
    if not results:
        intro.append(f"Reason: {reason}")
    intro.append(f"certmgr tries again by itself; once the cause is fixed, deploy "
                 f"{'it' if len(all_) == 1 else 'them'} now with the command below.")
    extra = {"error": reason, "escalation_level": escalation_level}
    return _build(all_, "deploy_failure", subject, intro, severity_for(facts, escalated=escalation_level > 0),
                  now, extra, commands=[f"certmgr -c {cfg} deploy {host}"], commands_label="To deploy it by hand:")


def success_message(new: Sequence[NewCert], deployed: Deployed, now: datetime) -> Message:
    """The notice of new certificates for one MTA, saying how they came and where they went."""
    new = sorted(new, key=lambda n: _sort_key(n.facts))
    all_ = [n.facts for n in new]
    facts = all_[0]
    host = facts.hostname
    how = _how(new)
    until = _date(min((f.not_after for f in all_ if f.not_after), default=None))
    status, where, severity, commands, label = _deployment_words(all_, deployed)
    subject = f"[certmgr] {host}: {_what(all_)} {how}, valid until {until}{status}"
    intro = [f"{'New TLS certificates' if len(all_) > 1 else 'A new TLS certificate'} for the mail server "
             f"{host} {'were' if len(all_) > 1 else 'was'} {how}."]
    for n in new:
        line = f"The new {_label(n.facts, all_)}certificate (serial {n.facts.serial}) expires {_when(n.facts)}"
        if n.replaced_not_after is not None:
            line += f"; the previous one would have expired {utc_text(n.replaced_not_after)}"
        intro.append(line + ".")
    intro += where
    extra = {
        "old_not_after": next((n.replaced_not_after.isoformat() for n in new if n.replaced_not_after), None),
        "how": how,
        "deploy_targets": list(deployed.targets),
        "deploy_results": {t: r for t, (r, _) in deployed.results.items()},
    }
    return _build(all_, "success", subject, intro, severity, now, extra, commands=commands, commands_label=label)


def _how(new: Sequence[NewCert]) -> str:
    if all(n.source == "import" for n in new):
        return "imported"
    if all(n.replaced_not_after is None for n in new):
        return "issued"
    return "renewed"


def _deployment_words(certs: Sequence[CertStatus], d: Deployed) -> tuple[str, list[str], str, list[str], str]:
    """(subject suffix, sentences, severity, commands, their label) saying where new certificates went."""
    host, cfg = shlex.quote(certs[0].hostname), shlex.quote(certs[0].config_path)
    it = "them" if len(certs) > 1 else "it"
    if not d.targets:
        files = [f"{f.key_alg}: {f.fullchain_path} (key {f.key_path})" for f in certs if f.fullchain_path]
        return (" - not deployed (no deploy target)",
                ["Not deployed anywhere: this MTA has no deploy target configured, so certmgr installed "
                 f"nothing. Install {it} yourself and reload the MTA."],
                "warning", files, "The files to install:")
    failed = {t: r for t, r in d.results.items() if t in d.targets and r[0] != "verified"}
    if failed:
        said = [f"NOT in service: the MTA keeps serving the previous certificate{'s' if len(certs) > 1 else ''}."]
        for t, (result, reason) in failed.items():
            what = {"rolled_back": "was rolled back", "blocked": "was blocked before install"}.get(result, "failed")
            said.append(f"Deployment to {t} {what}: {reason or result}.")
        said.append("certmgr tries again by itself; once the cause is fixed, deploy now with the command below.")
        return (" - NOT deployed (deployment failed)", said, "warning", [f"certmgr -c {cfg} deploy {host}"],
                f"To deploy {it} by hand:")
    pending = [t for t in d.targets if t not in d.results]
    if pending:
        return (" - not deployed yet",
                [f"Not deployed yet to {', '.join(pending)}: certmgr deploys {it} on its next run."],
                "info", [f"certmgr -c {cfg} deploy {host}"], "To deploy now:")
    return ("", [f"Deployed to {', '.join(d.targets)} and verified."],
            "info", [], "")


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
                 f"The problem was first seen at {utc_text(since)}."]
        severity = "info"
    else:
        again = kind.startswith("probe:critical:")
        tag = f"PROBE {status.upper()}" + (" (STILL)" if again else "")
        subject = f"[certmgr] {tag}: {hostname}: {problems[0] if problems else 'the TLS probe fails'}"
        intro = [f"certmgr probed the mail server {hostname} as an anonymous client and found "
                 f"{'a problem' if len(problems) == 1 else 'problems'} that senders see too:"]
        intro += [f"- {p}" for p in problems]
        if again:
            intro.append(f"This has been so since {utc_text(since)}; nobody has fixed it yet.")
        severity = "critical" if status == "critical" else "warning"
    rows = [(f.target, f"{f.status.upper()}" + (f": {'; '.join(f.problems)}" if f.problems else ""))
            for f in findings]
    command = f"certmgr -c {cfg} check {host}"
    text = [*intro, "", *(f"{k + ':':<24}{v}" for k, v in rows), "", "To probe it again by hand:", "",
            f"    {command}", "", f"-- certmgr, {utc_text(now)}"]
    esc = html.escape
    table = "".join(f"<tr><th align='left'>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    page = (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{esc(subject)}</title></head>\n<body>\n"
            + "\n".join(f"<p>{esc(p)}</p>" for p in intro)
            + f"\n<table>{table}</table>\n<p>To probe it again by hand:</p><pre>{esc(command)}</pre>\n"
            + f"<p><small>certmgr, {esc(utc_text(now))}</small></p>\n</body></html>\n")
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
    text = [*intro, "", *(f"    {c}" for c in commands), "", f"-- certmgr, {utc_text(now)}"]
    esc = html.escape
    page = (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{esc(subject)}</title></head>\n<body>\n"
            + "\n".join(f"<p>{esc(p)}</p>" for p in intro)
            + f"\n<pre>{esc(chr(10).join(commands))}</pre>\n<p><small>certmgr, {esc(utc_text(now))}</small></p>\n"
            + "</body></html>\n")
    return Message(subject=subject, text="\n".join(text) + "\n", html=page, severity="critical", hostname=None,
                   facts={"kind": "database_lost", "node": node, "what": what, "fix_commands": commands})


# --------------------------------------------------------------------------


def _build(
    certs: Sequence[CertStatus],
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
    facts = certs[0]
    details = _details(certs)
    if commands is None:
        commands = fix_commands(facts) if show_fix else []
    text_parts = [*intro, "", *(f"{k + ':':<16}{v}" for k, v in details)]
    if commands:
        text_parts += ["", commands_label, "", *(f"    {c}" for c in commands)]
    text_parts += ["", f"-- certmgr, {utc_text(now)}"]

    esc = html.escape
    rows = "".join(f"<tr><th align='left'>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in details)
    html_parts = [*(f"<p>{esc(p)}</p>" for p in intro), f"<table>{rows}</table>"]
    if commands:
        html_parts.append(f"<p>{esc(commands_label)}</p><pre>" + esc("\n".join(commands)) + "</pre>")
    html_parts.append(f"<p><small>certmgr, {esc(utc_text(now))}</small></p>")
    body = "\n".join(html_parts)
    page = f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{esc(subject)}</title></head>\n"
    page += f"<body>\n{body}\n</body></html>\n"

    return Message(
        subject=subject,
        text="\n".join(text_parts) + "\n",
        html=page,
        severity=severity,
        hostname=facts.hostname,
        facts={**_facts_json(facts), "certificates": [_facts_json(f) for f in certs], "kind": kind,
               "fix_commands": commands, **extra},
    )


def _sort_key(f: CertStatus) -> tuple[int, datetime]:
    """Most urgent first: no certificate yet, then the earliest expiry."""
    return (0, datetime.min.replace(tzinfo=UTC)) if f.not_after is None else (1, f.not_after)


def _sorted(certs: Certs) -> list[CertStatus]:
    listed = [certs] if isinstance(certs, CertStatus) else list(certs)
    if not listed:
        raise ValueError("a message needs at least one certificate")
    return sorted(listed, key=_sort_key)


def _what(certs: Sequence[CertStatus]) -> str:
    """"certificate", or "certificates (rsa, ecdsa)" for several."""
    if len(certs) == 1:
        return "certificate"
    return f"certificates ({', '.join(f.key_alg for f in certs)})"


def _verb(certs: Sequence[CertStatus], one: str, many: str) -> str:
    return one if len(certs) == 1 else many


def _label(facts: CertStatus, certs: Sequence[CertStatus]) -> str:
    """"RSA " when the message covers several certificates, else nothing."""
    return f"{facts.key_alg.upper()} " if len(certs) > 1 else ""


def _details(certs: Sequence[CertStatus]) -> list[tuple[str, str]]:
    if len(certs) == 1:
        return _details_one(certs[0])
    first = certs[0]
    rows = [
        ("MTA", first.hostname),
        ("Names", ", ".join(first.names) or first.hostname),
        ("Issuer", first.issuer + ("" if first.automatic else " (manual CA)")),
    ]
    for f in certs:
        alg = f.key_alg.upper()
        rows += [
            (f"{alg} key", f.key_type),
            (f"{alg} serial", f.serial or "none yet"),
            (f"{alg} expires", _when(f)),
            (f"{alg} state", f.state),
        ]
        if f.attempts or f.last_error:
            rows += [(f"{alg} attempts", f"{f.attempts} failed since the last success"),
                     (f"{alg} last error", f.last_error or "none")]
        if f.next_retry is not None:
            rows.append((f"{alg} next retry", utc_text(f.next_retry)))
    rows.append(("Config", first.config_path))
    return rows


def _details_one(facts: CertStatus) -> list[tuple[str, str]]:
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
        rows.append(("Next retry", utc_text(facts.next_retry)))
    rows.append(("Config", facts.config_path))
    return rows


def _facts_json(facts: CertStatus) -> dict[str, Any]:
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


def _date(when: datetime | None) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d") if when else "unknown"


def _days(facts: CertStatus) -> str:
    if facts.days_left is None:
        return "an unknown number of days"
    if facts.days_left < 0:
        return "0 days (EXPIRED)"
    return f"{facts.days_left} day" + ("" if facts.days_left == 1 else "s")


def _when(facts: CertStatus) -> str:
    if facts.not_after is None:
        return "(no certificate issued yet)"
    if facts.days_left is not None and facts.days_left < 0:
        return f"on {utc_text(facts.not_after)} (already EXPIRED {-facts.days_left} days ago)"
    return f"on {utc_text(facts.not_after)} ({_days(facts)} left)"

