"""Prometheus metrics from plain facts: text for node_exporter's textfile collector,
or a small HTTP endpoint for the daemon.

``prometheus_client`` is imported inside the functions so that ``certmgr --help``
and every command that prints no metrics never load it.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from certmgr.runtime import Runtime

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


@dataclass(frozen=True)
class Family:
    """One exported gauge: its name, help text and label names (in sorted order, as the
    exposition format writes them)."""

    name: str
    doc: str
    labels: tuple[str, ...]


_CERT = ("hostname", "key_type")
NOT_AFTER = Family("certmgr_certificate_not_after_timestamp_seconds", "Expiry of the current certificate (Unix time)",
                   _CERT)
DAYS_LEFT = Family("certmgr_certificate_days_left", "Days until the current certificate expires", _CERT)
ATTEMPT = Family("certmgr_renewal_last_attempt_timestamp_seconds", "Time of the last renewal attempt", _CERT)
RESULT = Family("certmgr_renewal_last_result", "1 for the result of the last renewal attempt", (*_CERT, "result"))
PROBE = Family("certmgr_probe_last_status", "Last STARTTLS probe: 0 ok, 1 warning, 2 critical, 3 unknown", _CERT)
STATE = Family("certmgr_deployment_state", "1 for the current lifecycle state", (*_CERT, "state"))
JOB_OK = Family("certmgr_job_last_success_timestamp_seconds", "Last successful run of a job", ("job",))
#: every family of certificates and jobs, in the order they are exported
FAMILIES = (NOT_AFTER, DAYS_LEFT, ATTEMPT, RESULT, PROBE, STATE, JOB_OK)

Samples = dict[Family, dict[tuple[str, ...], float]]


def samples(certs: Iterable[CertMetrics], jobs: Iterable[JobMetrics] = ()) -> Samples:
    """Family -> label values -> value, in the order exported (the one definition of what the
    certificate and job series say; a label set given twice keeps its place and the last value)."""
    out: Samples = {f: {} for f in FAMILIES}
    not_after, days_left, attempt, result, probe, state, job_ok = (out[f] for f in FAMILIES)
    for c in certs:
        key = (c.hostname, c.key_type)
        if c.not_after is not None:
            not_after[key] = c.not_after.timestamp()
        if c.days_left is not None:
            days_left[key] = c.days_left
        if c.last_attempt is not None:
            attempt[key] = c.last_attempt.timestamp()
        if c.last_result is not None:
            for r in sorted({*RESULTS, c.last_result}):
                result[(*key, r)] = 1 if r == c.last_result else 0
        probe[key] = PROBE_STATUS.get(c.probe_status or "unknown", 3)
        for st in (*KNOWN_STATES, *(() if c.state in KNOWN_STATES else (c.state,))):
            state[(*key, st)] = 1 if st == c.state else 0
    for j in jobs:
        if j.last_success is not None:
            job_ok[(j.job,)] = j.last_success.timestamp()
    return out


def build_registry(certs: Iterable[CertMetrics], jobs: Iterable[JobMetrics] = ()) -> CollectorRegistry:
    """A fresh registry holding the current values (rebuilt on every scrape or write)."""
    from prometheus_client import CollectorRegistry

    reg = CollectorRegistry(auto_describe=True)
    reg.register(_Gauges(samples(certs, jobs)))
    return reg


class _Gauges:
    """The certificate and job series as one collector of gauge families: a ``Gauge`` object
    per label set (140,000 at 10,000 certificates) cost as much as writing them out."""

    def __init__(self, values: Samples) -> None:
        self._values = values

    def describe(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        for family in self._values:
            yield GaugeMetricFamily(family.name, family.doc, labels=family.labels)

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        for family, rows in self._values.items():
            gauge = GaugeMetricFamily(family.name, family.doc, labels=family.labels)
            for labels, value in rows.items():
                gauge.add_metric(labels, float(value))
            yield gauge


def samples_text(values: Samples) -> str:
    """What :func:`render_text` writes for a registry holding these ``values`` only, byte for
    byte (a unit test compares them), without building prometheus_client's objects: at 10,000
    certificates (140,000 samples) those took 3 of a `certmgr metrics` run's 4.7 seconds."""
    out = []
    written: dict[int, str] = {}  # integer value -> its text: most samples are 0 or 1
    for family, rows in values.items():
        out.append(f"# HELP {family.name} {family.doc}\n# TYPE {family.name} gauge\n")
        heads: dict[tuple[str, ...], str] = {}  # the name and first two labels, once per certificate
        tails: dict[str, str] = {}  # the third label (result, state), once per value
        extra = family.labels[2] if len(family.labels) > 2 else None
        for labels, value in rows.items():
            head = heads.get(labels[:2])
            if head is None:
                head = heads[labels[:2]] = family.name + "{" + ",".join(
                    f'{n}="{_label_value(v)}"' for n, v in zip(family.labels, labels[:2], strict=False))
            if type(value) is int:  # not floats: -0.0 == 0.0 is written "-0.0"
                text = written.get(value) or written.setdefault(value, _go_float(value))
            else:
                text = _go_float(value)
            if extra is None:
                out.append(f"{head}}} {text}\n")
            else:
                tail = tails.get(labels[2])
                if tail is None:
                    tail = tails[labels[2]] = f',{extra}="{_label_value(labels[2])}"}} '
                out.append(f"{head}{tail}{text}\n")
    return "".join(out)


def _label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def _go_float(value: float) -> str:
    """A sample value as the exposition format writes it (``prometheus_client.utils.floatToGoString``)."""
    d = float(value)
    if d == math.inf:
        return "+Inf"
    if d == -math.inf:
        return "-Inf"
    if math.isnan(d):
        return "NaN"
    s = repr(d)
    dot = s.find(".")
    if d > 0 and dot > 6:  # Go writes an exponent sooner than Python
        mantissa = f"{s[0]}.{s[1:dot]}{s[dot + 1:]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return s


def metrics_registry(rt: Runtime, now: datetime | None = None) -> CollectorRegistry:
    """Current facts of every configured certificate and job, as a Prometheus registry."""
    registry = build_registry(*_facts(rt, now))
    _add_practices(rt, registry, now)
    return registry


def metrics_text(rt: Runtime, now: datetime | None = None) -> bytes:
    """What :func:`render_text` of :func:`metrics_registry` says, written without building the
    certificate and job series as prometheus_client objects (`certmgr metrics`)."""
    text = samples_text(samples(*_facts(rt, now))).encode()
    if rt.config.monitor is None and not rt.config.partners:
        return text
    from prometheus_client import CollectorRegistry

    practices = CollectorRegistry(auto_describe=True)
    _add_practices(rt, practices, now)
    return text + render_text(practices)


def _facts(rt: Runtime, now: datetime | None) -> tuple[list[CertMetrics], list[JobMetrics]]:
    from certmgr.times import days_until, utcnow

    now = now or utcnow()
    wanted = {key for m in rt.config.mtas for key in m.slot_keys}
    # the read path (no ORM): metrics only display, and the daemon serves them while it renews
    slots = [s for s in rt.rows.slot_rows() if s.slot_key in wanted]
    versions = rt.rows.current_versions()
    probes = {host: rows[0].status for host, rows in rt.rows.recent_probes(1).items()}
    certs = []
    for s in slots:
        v = versions.get(s.id) if s.id is not None else None
        certs.append(CertMetrics(
            hostname=s.hostname, key_type=s.key_alg, not_after=v.not_after if v else None,
            days_left=days_until(v.not_after, now) if v else None, state=s.state,
            last_attempt=s.last_attempt_at, last_result=s.last_result, probe_status=probes.get(s.hostname),
        ))
    jobs = [JobMetrics(name, last_success) for name, last_success in sorted(rt.rows.job_successes().items())]
    return certs, jobs


def _add_practices(rt: Runtime, registry: CollectorRegistry, now: datetime | None) -> None:
    """The series of ``[monitor]`` and ``[[partner]]`` after the certificates', read as those are
    (:attr:`certmgr.runtime.Runtime.rows`: no ORM)."""
    if rt.config.monitor is not None:  # the mail TLS series beside the certificates'
        from certmgr.monitor.metrics import collector
        from certmgr.store.practice_rows import MonitorRows
        from certmgr.times import utcnow

        sources = [src.name for src in rt.config.monitor.logs]
        registry.register(collector(MonitorRows(rt.rows), sources, now=now or utcnow()))
    if rt.config.partners:  # what the last partner check found: metrics never probe partners
        from certmgr.partners.watch import add_metrics
        from certmgr.store.practice_rows import partner_states

        configured = {p.domain for p in rt.config.partners}
        add_metrics(registry, [r for d, r in sorted(partner_states(rt.rows).items()) if d in configured])


def render_text(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition format."""
    from prometheus_client import generate_latest

    return bytes(generate_latest(registry))


def write_textfile(path: str | Path, metrics: CollectorRegistry | bytes) -> None:
    """Write ``metrics`` (a registry, or its text) atomically: node_exporter must never read a
    half-written file."""
    from certmgr.store.files import atomic_write

    # node_exporter runs as another user; metrics hold no secrets
    atomic_write(Path(path), metrics if isinstance(metrics, bytes) else render_text(metrics), 0o644)


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
