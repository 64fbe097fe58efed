"""The periodic TLS report as a mail people want to read.

A plain-text part that says everything in words (the trend too, point by
point), and an HTML part showing the TLS-share trend drawn by pygal, as a PNG
(rendered by cairosvg: mail clients show PNG, few show SVG) referenced by
``cid:``; the notifier sends it as ``multipart/related``.  ``certmgr report
--html`` writes a page with the SVG inline instead.  Built from the JSON report
of ``certmgr.monitor.report`` and the certificate events of the period; pygal
and cairosvg are imported only here, when a report is drawn.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
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

    daily = _daily(report)
    series = {d: dict(trend(report[d], daily=daily)) for d in ("inbound", "outbound")}
    labels = sorted(set(series["inbound"]) | set(series["outbound"]))
    chart = pygal.Line(title="Share of SMTP sessions with TLS (%)", range=(0, 100), js=[], x_label_rotation=30,
                       width=720, height=320, show_dots=True, disable_xml_declaration=True)
    chart.x_labels = labels
    for d in ("inbound", "outbound"):
        chart.add(d, [series[d].get(label) for label in labels])
    return str(chart.render(is_unicode=True)).encode()


def chart_png(report: dict[str, Any]) -> bytes:
    """The chart of :func:`chart_svg` as a PNG image."""
    import cairosvg

    return bytes(cairosvg.svg2png(bytestring=chart_svg(report)))


def _daily(report: dict[str, Any]) -> bool:
    return (datetime.fromisoformat(report["until"]) - datetime.fromisoformat(report["since"])).days > 2


def _trend_words(direction: dict[str, Any], *, daily: bool) -> str:
    points = [f"{label} {share:.1f}%" for label, share in trend(direction, daily=daily) if share is not None]
    return ", ".join(points) if points else "no sessions"


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
        out.append(f"  TLS share {'per day' if _daily(report) else 'per hour'} (the chart): "
                   f"{_trend_words(c, daily=_daily(report))}")
        plain = sorted(((v["plaintext"], k) for k, v in c["domains"].items() if v["plaintext"]), reverse=True)[:TOP]
        out.append("  still in plaintext: " + (", ".join(f"{k} ({n})" for n, k in plain) if plain else "nobody"))
        peers = c.get("plaintext_peers", [])[:TOP]
        if peers:
            out.append("  peers still in plaintext: " + ", ".join(
                f"{p['host']}[{p['address']}] ({p['sessions']})" for p in peers))
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
                events: Sequence[str] = (), chart_cid: str | None = None) -> str:
    """The report as one HTML page: the chart, then the words of the mail.  The chart is the
    SVG inline (``certmgr report --html``), or with ``chart_cid`` an ``<img>`` of the image
    sent beside the page with that Content-ID (the mail)."""
    chart = (chart_svg(report).decode() if chart_cid is None else
             f"<img src=\"cid:{html.escape(chart_cid)}\" alt=\"TLS share trend, inbound and outbound "
             f"(in words below)\" width=\"720\" height=\"320\">")
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>TLS report</title></head>"
            f"<body style=\"font-family:sans-serif\">\n{chart}\n{_html_body(_lines(report, previous, events))}"
            "</body></html>\n")
