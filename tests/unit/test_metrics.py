"""Prometheus metrics: exposition text, textfile writes, the loopback endpoint, lazy import."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from certmgr.errors import StateError
from certmgr.service.metrics import CertMetrics, JobMetrics, build_registry, render_text, serve, write_textfile
from tests.peers.util import free_port

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def registry() -> CollectorRegistry:
    certs = [
        CertMetrics("mx1.example.com", "rsa", NOW + timedelta(days=20), 20.0, "verified",
                    last_attempt=NOW, last_result="success", probe_status="ok"),
        CertMetrics("mx1.example.com", "ecdsa", NOW + timedelta(days=2), 2.0, "failed",
                    last_attempt=NOW, last_result="failure", probe_status="critical"),
        CertMetrics("new.example.com", "rsa", None, None, "planned"),
    ]
    return build_registry(certs, [JobMetrics("renew", NOW), JobMetrics("probe", None)])


def samples(text: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(text.decode())
        for s in fam.samples
    }


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def test_exposition_values() -> None:
    s = samples(render_text(registry()))
    rsa = {"hostname": "mx1.example.com", "key_type": "rsa"}
    ec = {"hostname": "mx1.example.com", "key_type": "ecdsa"}
    new = {"hostname": "new.example.com", "key_type": "rsa"}
    expiry = (NOW + timedelta(days=20)).timestamp()
    assert s[key("certmgr_certificate_not_after_timestamp_seconds", **rsa)] == expiry
    assert s[key("certmgr_certificate_days_left", **ec)] == 2.0
    assert s[key("certmgr_renewal_last_attempt_timestamp_seconds", **ec)] == NOW.timestamp()
    assert s[key("certmgr_renewal_last_result", **ec, result="failure")] == 1
    assert s[key("certmgr_renewal_last_result", **ec, result="success")] == 0
    assert s[key("certmgr_probe_last_status", **rsa)] == 0
    assert s[key("certmgr_probe_last_status", **ec)] == 2
    assert s[key("certmgr_probe_last_status", **new)] == 3  # never probed: unknown
    assert s[key("certmgr_deployment_state", **rsa, state="verified")] == 1
    assert s[key("certmgr_deployment_state", **rsa, state="failed")] == 0
    assert s[key("certmgr_deployment_state", **new, state="planned")] == 1
    assert s[key("certmgr_job_last_success_timestamp_seconds", job="renew")] == NOW.timestamp()
    # no certificate, no attempt, no success: no made-up values
    assert key("certmgr_certificate_days_left", **new) not in s
    assert key("certmgr_renewal_last_result", **new, result="success") not in s
    assert key("certmgr_job_last_success_timestamp_seconds", job="probe") not in s


def test_textfile_is_written_atomically(tmp_path: Path) -> None:
    target = tmp_path / "certmgr.prom"
    target.write_text("old\n")
    write_textfile(target, registry())
    assert target.read_bytes() == render_text(registry())
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in tmp_path.iterdir()] == ["certmgr.prom"]  # no temp file left


def test_textfile_into_missing_directory_fails_cleanly(tmp_path: Path) -> None:
    with pytest.raises(StateError, match=r"could not write .*/nope/certmgr.prom: No such file or directory"):
        write_textfile(tmp_path / "nope" / "certmgr.prom", registry())


def test_serve_on_loopback_uses_fresh_values() -> None:
    calls: list[int] = []

    def getter() -> CollectorRegistry:
        calls.append(1)
        return registry()

    port = free_port()
    stop = serve("127.0.0.1", port, getter)
    try:
        for _ in range(2):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                body = resp.read()
        assert b'certmgr_certificate_days_left{hostname="mx1.example.com",key_type="ecdsa"} 2.0' in body
        assert len(calls) >= 2  # built per scrape, not once at start
    finally:
        stop()


@pytest.mark.parametrize("address", ["0.0.0.0", "192.0.2.10", "::", "mx1.example.com"])
def test_serve_refuses_non_loopback(address: str) -> None:
    with pytest.raises(ValueError, match="not a loopback address"):
        serve(address, free_port(), registry)


def test_import_does_not_load_prometheus_client() -> None:
    code = "import sys, certmgr.service.metrics; sys.exit('prometheus_client' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
