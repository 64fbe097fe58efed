"""Prometheus metrics from plain facts: text for node_exporter's textfile collector,
or a small HTTP endpoint for the daemon.

``prometheus_client`` is imported inside the functions so that ``certmgr --help``
and every command that prints no metrics never load it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

#: lifecycle states always exported (0 or 1), so a dashboard sees every series even at 0
KNOWN_STATES = (
    "planned", "key_ready", "order_pending", "issued", "deployed", "verified", "failed", "rolled_back",
)
RESULTS = ("success", "failure")
#: probe status as in the monitoring-plugin convention (certmgr check's exit codes)
PROBE_STATUS = {"ok": 0, "warning": 1, "critical": 2, "unknown": 3}


@dataclass(frozen=True)
class CertMetrics:
    """Facts about one MTA certificate (one per hostname and key algorithm)."""

    hostname: str
    key_type: str  # "rsa" | "ecdsa" (as in `status --json`)
    not_after: datetime | None
    days_left: float | None
    state: str
    last_attempt: datetime | None = None
    last_result: str | None = None  # "success" | "failure" | None (never tried)
    probe_status: str | None = None  # ok | warning | critical | unknown; None = not probed


@dataclass(frozen=True)
class JobMetrics:
    job: str  # "renew", "probe", "remind", ...
    last_success: datetime | None


def build_registry(certs: Iterable[CertMetrics], jobs: Iterable[JobMetrics] = ()) -> CollectorRegistry:
    """A fresh registry holding the current values (rebuilt on every scrape or write)."""
    from prometheus_client import CollectorRegistry, Gauge

    reg = CollectorRegistry(auto_describe=True)
    labels = ["hostname", "key_type"]

    def gauge(name: str, doc: str, extra: Sequence[str] = ()) -> Gauge:
        return Gauge(name, doc, [*labels, *extra], registry=reg)

    not_after = gauge("certmgr_certificate_not_after_timestamp_seconds",
                      "Expiry of the current certificate (Unix time)")
    days_left = gauge("certmgr_certificate_days_left", "Days until the current certificate expires")
    attempt = gauge("certmgr_renewal_last_attempt_timestamp_seconds", "Time of the last renewal attempt")
    result = gauge("certmgr_renewal_last_result", "1 for the result of the last renewal attempt",
                   ["result"])
    probe = gauge("certmgr_probe_last_status",
                  "Last STARTTLS probe: 0 ok, 1 warning, 2 critical, 3 unknown")
    state = gauge("certmgr_deployment_state", "1 for the current lifecycle state", ["state"])
    job_ok = Gauge("certmgr_job_last_success_timestamp_seconds", "Last successful run of a job",
                   ["job"], registry=reg)

    for c in certs:
        key = (c.hostname, c.key_type)
        if c.not_after is not None:
            not_after.labels(*key).set(c.not_after.timestamp())
        if c.days_left is not None:
            days_left.labels(*key).set(c.days_left)
        if c.last_attempt is not None:
            attempt.labels(*key).set(c.last_attempt.timestamp())
        if c.last_result is not None:
            for r in sorted({*RESULTS, c.last_result}):
                result.labels(*key, r).set(1 if r == c.last_result else 0)
        probe.labels(*key).set(PROBE_STATUS.get(c.probe_status or "unknown", 3))
        for s in (*KNOWN_STATES, *(() if c.state in KNOWN_STATES else (c.state,))):
            state.labels(*key, s).set(1 if s == c.state else 0)
    for j in jobs:
        if j.last_success is not None:
            job_ok.labels(j.job).set(j.last_success.timestamp())
    return reg


def render_text(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition format."""
    from prometheus_client import generate_latest

    return bytes(generate_latest(registry))


def write_textfile(path: str | Path, registry: CollectorRegistry) -> None:
    """Write atomically: node_exporter must never read a half-written file."""
    from certmgr.store.files import atomic_write

    # node_exporter runs as another user; metrics hold no secrets
    atomic_write(Path(path), render_text(registry), 0o644)


class _Delegate:
    """A collector that asks for a fresh registry on every scrape."""

    def __init__(self, getter: Callable[[], CollectorRegistry]) -> None:
        self._getter = getter

    def collect(self) -> Iterator[Any]:
        yield from self._getter().collect()


def serve(
    address: str,
    port: int,
    registry_getter: Callable[[], CollectorRegistry],
    *,
    allow_remote: bool = False,
) -> Callable[[], None]:
    """Serve /metrics on ``address:port`` in a background thread; returns a stop function.

    Only loopback addresses unless ``allow_remote``: the endpoint has no
    authentication and tells anyone which certificates are about to expire.
    """
    from prometheus_client import start_http_server

    if not allow_remote and not _is_loopback(address):
        raise ValueError(
            f"metrics address {address} is not a loopback address; the endpoint has no "
            "authentication. Use 127.0.0.1 / ::1 (and a reverse proxy), or allow remote access explicitly"
        )
    server, thread = start_http_server(port, addr=address, registry=_Delegate(registry_getter))

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop


def _is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False
