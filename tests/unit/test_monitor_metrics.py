"""The mail TLS series: valid exposition (promtool check metrics), and the shipped
alert rules and Grafana dashboard use only names the code exports."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from certmgr.monitor.metrics import EXPORTED, render
from certmgr.monitor.storage import SessionKey
from certmgr.monitor.tlsrpt import parse_body
from certmgr.store.monitor import MonitorStore
from tests.peers.util import require_binary
from tests.tlsrpt_reports import as_json, report

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "contrib/prometheus/certmgr-mail-tls.rules.yml"
DASHBOARD = ROOT / "contrib/grafana/certmgr-mail-tls.json"
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def exposition(tmp_path: Path) -> str:
    store = MonitorStore.at(tmp_path / "db")
    h = "2026-11-30T10:00:00+00:00"
    store.commit("/var/log/mail.log", {"last_time": "2026-11-30T11:00:00+00:00"},
                 {SessionKey(h, "inbound", "a.example", "Anonymous", "TLSv1.3"): 7,
                  SessionKey(h, "inbound", "b.example", "none", ""): 3,
                  SessionKey(h, "outbound", "c.example", "Verified", "TLSv1.3"): 5}, 2)
    store.add_tlsrpt(parse_body(as_json(report("r1")), "application/tlsrpt+json"), NOW)
    return render(store, ["/var/log/mail.log"], now=NOW).decode()


def names_in(text: str) -> set[str]:
    return set(re.findall(r"\bcertmgr_mail_[a-z_]+", text))


def test_exposition_is_valid_and_counts(tmp_path: Path) -> None:
    text = exposition(tmp_path)
    promtool = require_binary("promtool")
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert samples[("certmgr_mail_sessions_total", (("direction", "inbound"), ("level", "Anonymous")))] == 7
    assert samples[("certmgr_mail_sessions_total", (("direction", "inbound"), ("level", "none")))] == 3
    assert samples[("certmgr_mail_sessions_total", (("direction", "outbound"), ("level", "Trusted")))] == 0
    assert samples[("certmgr_mail_collector_lag_seconds", (("source", "/var/log/mail.log"),))] == 3600
    assert samples[("certmgr_mail_unparsed_lines_total", (("source", "/var/log/mail.log"),))] == 2
    assert samples[("certmgr_mail_tlsrpt_reports_total", ())] == 1
    assert samples[("certmgr_mail_tlsrpt_failed_sessions_total", (("result_type", "certificate-expired"),))] > 0
    assert names_in(text) == set(EXPORTED)


def test_rules_pass_promtool_and_use_exported_names() -> None:
    promtool = require_binary("promtool")
    for cmd in (["check", "rules", str(RULES)], ["test", "rules", str(RULES.with_suffix(".test.yml"))]):
        proc = subprocess.run([promtool, *cmd], capture_output=True, text=True, cwd=RULES.parent)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert names_in(RULES.read_text()) <= set(EXPORTED)


def test_dashboard_queries_use_exported_names() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = set().union(*(names_in(e) for e in exprs))
    assert used and used <= set(EXPORTED), used - set(EXPORTED)
