"""Prometheus series of mail TLS, from the monitor's store.

``certmgr_mail_sessions_total{direction,level}``: SMTP sessions counted in the
logs (``level="none"``: plaintext), so that PromQL gives the TLS share with
``rate()``; ``certmgr_mail_tlsrpt_failed_sessions_total{result_type}`` and
``certmgr_mail_tlsrpt_reports_total``; per log ``certmgr_mail_collector_lag_seconds``
(now minus the time of the last session read) and
``certmgr_mail_unparsed_lines_total``.  ``prometheus_client`` is imported inside
``render`` so commands that print no metrics never load it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from certmgr.monitor.storage import MonitorReads

#: every series name ``render`` exports (the dashboard and the alert rules use only these)
EXPORTED = (
    "certmgr_mail_sessions_total", "certmgr_mail_tlsrpt_failed_sessions_total", "certmgr_mail_tlsrpt_reports_total",
    "certmgr_mail_collector_lag_seconds", "certmgr_mail_unparsed_lines_total",
)
_EVER = (datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC))


def render(storage: MonitorReads, sources: Iterable[str], *, now: datetime) -> bytes:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(collector(storage, sources, now=now))
    return bytes(generate_latest(registry))


def collector(storage: MonitorReads, sources: Iterable[str], *, now: datetime) -> Any:
    """A ``prometheus_client`` collector of the series above, read from ``storage`` now
    (so it can be registered beside the certificate series and outlive the storage)."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.registry import Collector

    sessions: Counter[tuple[str, str]] = Counter()
    for row in storage.sessions(*_EVER):
        sessions[(row.key.direction, row.key.level)] += row.sessions
    tlsrpt = storage.tlsrpt(*_EVER)
    unparsed = storage.unparsed()
    lags = {}
    for source in sources:
        pos = storage.load_position(source) or {}
        if pos.get("last_time"):
            lags[source] = (now - datetime.fromisoformat(pos["last_time"])).total_seconds()

    class _Monitor(Collector):
        def collect(self):  # type: ignore[no-untyped-def]  # prometheus_client's own signature
            s = CounterMetricFamily("certmgr_mail_sessions", "SMTP sessions counted in the mail logs",
                                    labels=["direction", "level"])
            for direction in ("inbound", "outbound"):
                for level in ("none", "Anonymous", "Untrusted", "Trusted", "Verified"):
                    s.add_metric([direction, level], sessions.get((direction, level), 0))
            yield s
            f = CounterMetricFamily("certmgr_mail_tlsrpt_failed_sessions",
                                    "Failed sessions in TLS reports (RFC 8460)", labels=["result_type"])
            for result_type, n in sorted(tlsrpt.failures.items()):
                f.add_metric([result_type], n)
            yield f
            yield CounterMetricFamily("certmgr_mail_tlsrpt_reports", "TLS reports stored", value=tlsrpt.reports)
            lag = GaugeMetricFamily("certmgr_mail_collector_lag_seconds",
                                    "Now minus the time of the last session read from the log", labels=["source"])
            for source, seconds in sorted(lags.items()):
                lag.add_metric([source], seconds)
            yield lag
            u = CounterMetricFamily("certmgr_mail_unparsed_lines", "Log lines that were not syslog lines",
                                    labels=["source"])
            for source, n in sorted(unparsed.items()):
                u.add_metric([source], n)
            yield u

    return _Monitor()
