"""The periodic TLS report as a mail people want to read.

``multipart/alternative``: a plain-text part that says everything in words, and
an HTML part (``multipart/related``) with the TLS-share trend drawn by pygal as
an SVG image referenced by ``cid:``.  Built from the JSON report of
``certmgr.monitor.report`` and the certificate events of the period; pygal is
imported only here, when a mail is built.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

LEGACY = ("TLSv1", "TLSv1.0", "TLSv1.1", "SSLv3")
TOP = 10


def _pct(part: int, whole: int) -> str:
    return "n/a" if not whole else f"{100 * part / whole:.1f}%"


def trend(direction: dict[str, Any], *, daily: bool) -> list[tuple[str, float | None]]:
    """(label, TLS share in %) per day (or hour) of the period, from the hourly counts."""
    buckets: dict[str, list[int]] = {}
    for hour, sessions, tls in direction["hourly"]:
        key = hour[:10] if daily else hour[:13].replace("T", " ") + "h"
        b = buckets.setdefault(key, [0, 0])
        b[0] += sessions
        b[1] += tls
    return [(k, 100 * t / n if n else None) for k, (n, t) in sorted(buckets.items())]


def chart_svg(report: dict[str, Any]) -> bytes:
    import pygal

    daily = (datetime.fromisoformat(report["until"]) - datetime.fromisoformat(report["since"])).days > 2
    series = {d: dict(trend(report[d], daily=daily)) for d in ("inbound", "outbound")}
    labels = sorted(set(series["inbound"]) | set(series["outbound"]))
    chart = pygal.Line(title="Share of SMTP sessions with TLS (%)", range=(0, 100), js=[], x_label_rotation=30,
                       width=720, height=320, show_dots=True, disable_xml_declaration=True)
    chart.x_labels = labels
    for d in ("inbound", "outbound"):
        chart.add(d, [series[d].get(label) for label in labels])
    return str(chart.render(is_unicode=True)).encode()


def _lines(report: dict[str, Any], previous: dict[str, Any] | None, events: Sequence[str]) -> list[str]:
    out = [f"TLS report {report['since'][:16]} to {report['until'][:16]} (UTC)", ""]
    for d in ("inbound", "outbound"):
        c = report[d]
        line = f"{d.capitalize()}: {c['tls']} of {c['sessions']} sessions used TLS ({_pct(c['tls'], c['sessions'])})"
        if previous and previous[d]["sessions"]:
            p = previous[d]
            line += f", {_pct(p['tls'], p['sessions'])} the period before"
        out.append(line + ".")
        levels = ", ".join(f"{lvl} {n}" for lvl, n in sorted(c["by_level"].items()))
        out.append(f"  by trust level: {levels or 'none'}")
        plain = sorted(((v["plaintext"], k) for k, v in c["domains"].items() if v["plaintext"]), reverse=True)[:TOP]
        out.append("  still in plaintext: " + (", ".join(f"{k} ({n})" for n, k in plain) if plain else "nobody"))
        legacy = sorted(k for k, v in c["domains"].items() if any(p in LEGACY for p in v["by_protocol"]))
        out.append("  TLS 1.0/1.1 still used by: " + (", ".join(legacy) if legacy else "nobody"))
        protos = ", ".join(f"{p} {n}" for p, n in sorted(c["by_protocol"].items()))
        out.append(f"  protocols: {protos or 'none'}")
        top = sorted(c["domains"].items(), key=lambda kv: -kv[1]["sessions"])[:TOP]
        if top:
            out.append("  top domains: " + ", ".join(
                f"{k} {_pct(v['tls'], v['sessions'])} TLS of {v['sessions']}" for k, v in top))
        out.append("")
    t = report["tlsrpt"]
    fails = ", ".join(f"{k} {n}" for k, n in sorted(t["failures"].items(), key=lambda kv: -kv[1]))
    out.append(f"TLS reports (RFC 8460): {t['reports']} reports, {t['successful']} successful sessions, "
               f"{sum(t['failures'].values())} failed" + (f" ({fails})" if fails else "") + ".")
    out.append("")
    out.append("Alerts:" + (" none" if not report["alerts"] else ""))
    out += [f"  - {a['message']}" for a in report["alerts"]]
    out.append("")
    out.append("Certificate events:" + (" none" if not events else ""))
    out += [f"  - {e}" for e in events]
    return out


def _html_body(lines: Sequence[str]) -> str:
    return "".join(f"<p>{html.escape(line)}</p>\n" if line and not line.startswith(" ") else
                   f"<p style=\"margin-left:2em\">{html.escape(line.strip())}</p>\n" if line else "" for line in lines)


def report_text(report: dict[str, Any], *, previous: dict[str, Any] | None = None,
                events: Sequence[str] = ()) -> str:
    """The report in words, as the plain-text part of the mail says it."""
    return "\n".join(_lines(report, previous, events)) + "\n"


def report_page(report: dict[str, Any], *, previous: dict[str, Any] | None = None,
                events: Sequence[str] = ()) -> str:
    """The report as one HTML page (``certmgr report --html``): the chart inline, then the words of the mail."""
    svg = chart_svg(report).decode()
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>TLS report</title></head>"
            f"<body style=\"font-family:sans-serif\">\n{svg}\n{_html_body(_lines(report, previous, events))}"
            "</body></html>\n")


def build_report_mail(report: dict[str, Any], *, sender: str, recipients: Sequence[str], now: datetime,
                      previous: dict[str, Any] | None = None, events: Sequence[str] = ()) -> EmailMessage:
    """The report mail; ``previous``: the report of the period before (for the trend in words)."""
    lines = _lines(report, previous, events)
    msg = EmailMessage()
    msg["Subject"] = (f"TLS report: inbound {_pct(report['inbound']['tls'], report['inbound']['sessions'])}, "
                      f"outbound {_pct(report['outbound']['tls'], report['outbound']['sessions'])} with TLS")
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    msg.set_content(report_text(report, previous=previous, events=events))
    cid = make_msgid(domain="certmgr.invalid")
    body = _html_body(lines)
    msg.add_alternative(
        "<!DOCTYPE html><html><body style=\"font-family:sans-serif\">\n"
        f"<img src=\"cid:{cid[1:-1]}\" alt=\"TLS share trend\" width=\"720\" height=\"320\">\n{body}</body></html>\n",
        subtype="html")
    html_part = next(p for p in msg.iter_parts() if p.get_content_type() == "text/html")
    assert isinstance(html_part, EmailMessage)
    html_part.add_related(chart_svg(report), maintype="image", subtype="svg+xml", cid=cid,
                          filename="tls-trend.svg")
    return msg
