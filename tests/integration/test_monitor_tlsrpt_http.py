"""TLS reports POSTed over real HTTPS (RFC 8460 §3) to the endpoint: stored once,
corrupt ones refused with the reason, nothing half-stored."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from certmgr.monitor.tlsrpt_http import TlsRptServer
from certmgr.store.monitor import MonitorStore
from tests.peers.testca import TestCA
from tests.tlsrpt_reports import as_gzip, as_json, bomb, report

pytestmark = pytest.mark.integration
SINCE, UNTIL = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[tuple[str, Path, MonitorStore]]:
    ca = TestCA("tlsrpt")
    leaf = ca.leaf("localhost")
    (tmp_path / "cert.pem").write_bytes(leaf.cert_pem + leaf.chain_pem)
    (tmp_path / "key.pem").write_bytes(leaf.key_pem)
    store = MonitorStore.at(tmp_path / "db")
    server = TlsRptServer(("127.0.0.1", 0), store, cert_file=tmp_path / "cert.pem", key_file=tmp_path / "key.pem")
    server.serve_in_thread()
    yield f"https://localhost:{server.server_address[1]}/", ca.write_root(tmp_path / "root.pem"), store
    server.shutdown()
    server.server_close()


def test_posted_reports(endpoint: tuple[str, Path, MonitorStore]) -> None:
    url, root, store = endpoint

    def post(body: bytes, media: str) -> requests.Response:
        return requests.post(url, data=body, headers={"Content-Type": media}, verify=str(root), timeout=30)

    r = post(as_gzip(report("http-1")), "application/tlsrpt+gzip")
    assert (r.status_code, r.text.strip()) == (201, "stored: http-1")
    assert post(as_json(report("http-2")), "application/tlsrpt+json").status_code == 201
    assert post(as_json(report("http-1")), "application/tlsrpt+json").status_code == 200  # same report-id

    refused = post(bomb(), "application/tlsrpt+gzip")
    assert refused.status_code == 400 and "expands beyond" in refused.text
    refused = post(b'{"report-id": "x", "policies": "none"}', "application/tlsrpt+json")
    assert refused.status_code == 400 and "missing 'date-range'" in refused.text
    assert post(as_json(report("http-3")), "application/json").status_code == 415

    summary = store.tlsrpt(SINCE, UNTIL)
    assert summary.reports == 2
    one = sum(f["failed-session-count"] for p in report("x")["policies"] for f in p.get("failure-details", []))
    assert sum(summary.failures.values()) == 2 * one
