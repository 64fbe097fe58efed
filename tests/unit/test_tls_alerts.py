"""Mail TLS alerts from the store: TLS-RPT failures tied to the MTA's latest verified
deployment, and each alert sent at most once a day."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from certmgr.config.load import load_config
from certmgr.monitor.alerts import Alert
from certmgr.monitor.tlsrpt import parse_body
from certmgr.notify.tls_alerts import alert_key, current_alerts, to_send
from certmgr.runtime import Runtime
from certmgr.store.models import CertVersion, Deployment
from certmgr.store.monitor import MonitorStore
from tests.tlsrpt_reports import as_json, report


def test_tlsrpt_failures_after_the_latest_verified_deployment_alert(tmp_path: Path) -> None:
    cfg = tmp_path / "certmgr.toml"
    cfg.write_text(f"""
[certmgr]
state_dir = "{tmp_path / 'state'}"

[issuer.corp]
type = "manual"

[[mta]]
hostname = "mx1.reports.test"
issuer = "corp"

[monitor]
logs = []
""")
    rt = Runtime(load_config(cfg))
    try:
        slot = rt.store.sync_slot("mx1.reports.test", "rsa", "rsa-2048", ["mx1.reports.test"], "corp")
        assert slot.id is not None
        ids: list[int] = []
        for serial, sha in (("0001aa", "a" * 64), ("4c64ab99ee", "b" * 64)):
            v = rt.store.add_version(CertVersion(
                managed_id=slot.id, serial=serial, not_before=datetime(2026, 11, 1, tzinfo=UTC),
                not_after=datetime(2027, 2, 1, tzinfo=UTC), sha256=sha, created_at=datetime(2026, 11, 1, tzinfo=UTC)))
            assert v.id is not None
            ids.append(v.id)
        at = datetime(2026, 11, 29, 10, 2, tzinfo=UTC)
        rt.store.add_deployment(Deployment(managed_id=slot.id, version_id=ids[0], target="edge", result="verified",
                                           started_at=datetime(2026, 11, 1, tzinfo=UTC)))
        rt.store.add_deployment(Deployment(managed_id=slot.id, version_id=ids[1], target="edge", result="verified",
                                           started_at=at, verified_at=at))
        # a later attempt that rolled back does not count as deployed
        rt.store.add_deployment(Deployment(managed_id=slot.id, version_id=ids[0], target="edge",
                                           result="rolled_back", started_at=datetime(2026, 11, 29, 23, tzinfo=UTC)))
        doc = report("after")  # ends 2026-11-29T23:59:59Z, failures at mx1.reports.test
        doc["organization-name"] = "google.com"
        MonitorStore(rt.store).add_tlsrpt(parse_body(as_json(doc), "application/tlsrpt+json"),
                                          datetime(2026, 11, 30, tzinfo=UTC))
        alerts = current_alerts(rt, datetime(2026, 11, 30, 6, tzinfo=UTC))
    finally:
        rt.close()
    tied = [a for a in alerts if a.kind == "tlsrpt-after-deployment"]
    assert tied and all(a.subject == "mx1.reports.test" for a in tied)
    assert tied[0].message.startswith("since serial 4c64ab99… was deployed on mx1.reports.test at 2026-11-29 10:02 UTC")
    assert "from google.com failed with" in tied[0].message
    assert "tlsrpt-failures" in {a.kind for a in alerts}


def test_each_alert_once_within_the_window() -> None:
    a = Alert("tls-share-low", "inbound", "", "inbound TLS share 50.0% is below 90%")
    b = Alert("downgrade", "outbound", "example.org", "example.org: 2 outbound sessions Anonymous")
    assert to_send([a, b, a], set()) == [a, b]
    assert to_send([a, b], {alert_key(a)}) == [b]
