"""`certmgr metrics` writes the certificate and job series itself (at 10,000 certificates
prometheus_client's objects took most of the run); what it writes must be, byte for byte, what
prometheus_client's exposition of the same facts says: label values to escape, unusual states,
values in every float form, a certificate named twice, jobs never run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from certmgr.service.metrics import CertMetrics, JobMetrics, build_registry, render_text, samples, samples_text

NOW = datetime(2026, 11, 30, 4, 12, 57, 123456, tzinfo=UTC)


def test_written_text_is_what_prometheus_client_writes() -> None:
    certs = [
        CertMetrics("mx1.example.com", "rsa", NOW + timedelta(days=20), 20.000001, "verified",
                    last_attempt=NOW, last_result="success", probe_status="ok"),
        CertMetrics("mx1.example.com", "ecdsa", NOW - timedelta(days=2), -2.5, "failed",
                    last_attempt=NOW, last_result="failure", probe_status="critical"),
        CertMetrics('odd"name\\with\nbreaks', "rsa", None, None, "planned"),
        CertMetrics("mx2.example.com", "rsa", NOW, 0.0, "some_new_state", last_result="timeout",
                    probe_status="bogus"),
        CertMetrics("mx3.example.com", "rsa", datetime(1970, 1, 1, tzinfo=UTC), 1e-7, "issued"),
        CertMetrics("mx5.example.com", "rsa", None, 1234567.25, "issued"),
        CertMetrics("mx6.example.com", "rsa", None, 0.0, "issued"),
        CertMetrics("mx7.example.com", "rsa", None, -0.0, "issued"),
        CertMetrics("mx8.example.com", "rsa", None, float("nan"), "issued"),
        CertMetrics("mx9.example.com", "rsa", None, float("inf"), "issued"),
        CertMetrics("mx4.example.com", "rsa", datetime(9999, 1, 1, tzinfo=UTC), 123456789.5, "deployed"),
        CertMetrics("mx1.example.com", "rsa", NOW + timedelta(days=30), 30.0, "issued"),  # named twice
    ]
    jobs = [JobMetrics("renew", NOW), JobMetrics("probe", None), JobMetrics('we"ird', NOW)]
    assert samples_text(samples(certs, jobs)).encode() == render_text(build_registry(certs, jobs))


def test_no_certificates_is_what_prometheus_client_writes() -> None:
    assert samples_text(samples([], [])).encode() == render_text(build_registry([], []))
