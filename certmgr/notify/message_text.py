"""The shared shape of every notification: the intro, the details table, the commands to run
by hand, text and HTML alike, and the words that describe certificates in it."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from certmgr.interfaces import Message
from certmgr.notify.cert_status import Certs, CertStatus, fix_commands
from certmgr.times import utc_text


def html_page(subject: str, body: str) -> str:
    """A whole HTML mail: ``subject`` as its title, ``body`` (already escaped) inside."""
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(subject)}</title></head>\n"
            f"<body>\n{body}\n</body></html>\n")


def signature_text(now: datetime) -> str:
    return f"-- certmgr, {utc_text(now)}"


def signature_html(now: datetime) -> str:
    return f"<p><small>certmgr, {html.escape(utc_text(now))}</small></p>"


def build_message(
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
    text_parts += ["", signature_text(now)]

    esc = html.escape
    rows = "".join(f"<tr><th align='left'>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in details)
    html_parts = [*(f"<p>{esc(p)}</p>" for p in intro), f"<table>{rows}</table>"]
    if commands:
        html_parts.append(f"<p>{esc(commands_label)}</p><pre>" + esc("\n".join(commands)) + "</pre>")
    html_parts.append(signature_html(now))
    page = html_page(subject, "\n".join(html_parts))

    return Message(
        subject=subject,
        text="\n".join(text_parts) + "\n",
        html=page,
        severity=severity,
        hostname=facts.hostname,
        facts={**_facts_json(facts), "certificates": [_facts_json(f) for f in certs], "kind": kind,
               "fix_commands": commands, **extra},
    )


def sort_key(f: CertStatus) -> tuple[int, datetime]:
    """Most urgent first: no certificate yet, then the earliest expiry."""
    return (0, datetime.min.replace(tzinfo=UTC)) if f.not_after is None else (1, f.not_after)


def sorted_certs(certs: Certs) -> list[CertStatus]:
    listed = [certs] if isinstance(certs, CertStatus) else list(certs)
    if not listed:
        raise ValueError("a message needs at least one certificate")
    return sorted(listed, key=sort_key)


def certs_word(certs: Sequence[CertStatus]) -> str:
    """"certificate", or "certificates (rsa, ecdsa)" for several."""
    if len(certs) == 1:
        return "certificate"
    return f"certificates ({', '.join(f.key_alg for f in certs)})"


def verb_for(certs: Sequence[CertStatus], one: str, many: str) -> str:
    return one if len(certs) == 1 else many


def alg_label(facts: CertStatus, certs: Sequence[CertStatus]) -> str:
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
            (f"{alg} expires", expiry_words(f)),
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
        ("Expires", expiry_words(facts)),
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


def date_words(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d") if moment else "unknown"


def days_words(facts: CertStatus) -> str:
    if facts.days_left is None:
        return "an unknown number of days"
    if facts.days_left < 0:
        return "0 days (EXPIRED)"
    return f"{facts.days_left} day" + ("" if facts.days_left == 1 else "s")


def expiry_words(facts: CertStatus) -> str:
    if facts.not_after is None:
        return "(no certificate issued yet)"
    if facts.days_left is not None and facts.days_left < 0:
        return f"on {utc_text(facts.not_after)} (already EXPIRED {-facts.days_left} days ago)"
    return f"on {utc_text(facts.not_after)} ({days_words(facts)} left)"

