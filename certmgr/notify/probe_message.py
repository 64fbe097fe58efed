"""The alert when a probe of an MTA turns WARNING or CRITICAL, stays so, or recovers."""

from __future__ import annotations

import html
import shlex
from dataclasses import dataclass
from datetime import datetime

from certmgr.interfaces import Message
from certmgr.notify.message_text import html_page, signature_html, signature_text
from certmgr.times import utc_text


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
            f"    {command}", "", signature_text(now)]
    esc = html.escape
    table = "".join(f"<tr><th align='left'>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    page = html_page(subject, "\n".join(f"<p>{esc(p)}</p>" for p in intro)
                     + f"\n<table>{table}</table>\n<p>To probe it again by hand:</p><pre>{esc(command)}</pre>\n"
                     + signature_html(now))
    return Message(subject=subject, text="\n".join(text) + "\n", html=page, severity=severity, hostname=hostname,
                   facts={"kind": kind, "hostname": hostname, "status": status, "since": since.isoformat(),
                          "findings": [{"target": f.target, "status": f.status, "problems": list(f.problems)}
                                       for f in findings], "fix_commands": [command]})
