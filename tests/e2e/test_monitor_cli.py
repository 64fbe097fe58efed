"""``certmgr collect`` and ``certmgr report`` as a user runs them, on the log of a real
Postfix that swaks sent mail through, with and without STARTTLS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Cli
from tests.peers.mailflow import EXPECTED_LEVEL, MailFlow

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailFlow]:
    f = MailFlow(tmp_path_factory.mktemp("monitor-cli")).start()
    yield f
    f.stop()


def monitor_config(tmp_path: Path, flow: MailFlow, extra: str = "") -> Path:
    path = tmp_path / "certmgr.toml"
    path.write_text(f"""
[certmgr]
state_dir = "{tmp_path / 'state'}"

[monitor]
logs = [{{ type = "postfix", path = "{flow.mx.log}" }}]
{extra}
""")
    return path


def test_collect_twice_then_report_counts_the_sessions_sent(flow: MailFlow, tmp_path: Path) -> None:
    cli = Cli(monitor_config(tmp_path, flow))
    sent = [("verified.test", True), ("trusted.test", False), ("untrusted.test", True),
            ("plain.test", False), ("verified.test", True)]
    for domain, starttls in sent:
        flow.send(domain, starttls=starttls)
    flow.wait_delivered(len(sent))

    first = cli.json("collect", "--json")
    assert first["errors"] == [] and first["logs"][0]["sessions"] == 2 * len(sent)  # in and out
    assert first["logs"][0]["unparsed"] == 0
    second = cli.json("collect", "--json")
    assert second["logs"][0]["sessions"] == 0 and second["logs"][0]["lines"] == 0

    rep = cli.json("report", "--since", "1d", "--json")
    inbound, outbound = rep["inbound"], rep["outbound"]
    tls_in = sum(1 for _, s in sent if s)
    assert (inbound["sessions"], inbound["tls"], inbound["plaintext"]) == (len(sent), tls_in, len(sent) - tls_in)
    assert outbound["sessions"] == len(sent) and outbound["plaintext"] == 1  # plain.test has no STARTTLS
    want: dict[str, dict[str, int]] = {}
    for domain, _ in sent:
        levels = want.setdefault(domain, {})
        levels[EXPECTED_LEVEL[domain]] = levels.get(EXPECTED_LEVEL[domain], 0) + 1
    assert {d: c["by_level"] for d, c in outbound["domains"].items()} == want

    # the same counts as Prometheus series on `certmgr metrics`, beside the certificates'
    metrics = cli("metrics").stdout
    assert f'certmgr_mail_sessions_total{{direction="inbound",level="none"}} {len(sent) - tls_in}.0' in metrics
    assert f'certmgr_mail_sessions_total{{direction="inbound",level="Anonymous"}} {tls_in}.0' in metrics
    assert 'certmgr_mail_sessions_total{direction="outbound",level="Verified"} 2.0' in metrics
    assert f'certmgr_mail_unparsed_lines_total{{source="{flow.mx.log}"}} 0.0' in metrics
    assert f'certmgr_mail_collector_lag_seconds{{source="{flow.mx.log}"}}' in metrics

    # the report collected first: nothing new, the numbers stay; the words and the page say the same
    assert cli.json("report", "--json")["inbound"]["sessions"] == len(sent)
    text = cli("report").stdout
    assert f"Inbound: {tls_in} of {len(sent)} sessions used TLS" in text
    page = tmp_path / "report.html"
    cli("report", "--html", str(page))
    assert "<svg" in page.read_text() and f"{tls_in} of {len(sent)} sessions" in page.read_text()


def test_bad_monitor_table_and_period_exit_2_naming_them(flow: MailFlow, tmp_path: Path) -> None:
    cli = Cli(monitor_config(tmp_path, flow, 'report = { notify = ["nobody"], every = "weekly" }'))
    r = cli("validate", check=2)
    assert "[monitor]" in r.stderr and "report.notify" in r.stderr and "nobody" in r.stderr, r.stderr
    assert ".toml:7" in r.stderr, r.stderr
    cli.config.write_text(cli.config.read_text().replace('report = { notify = ["nobody"], every = "weekly" }',
                                                         'report = { every = "hourly" }'))
    r = cli("collect", check=2)
    assert "report.every" in r.stderr and ".toml:7" in r.stderr and "hourly" in r.stderr, r.stderr
    assert not (tmp_path / "state").exists()  # nothing half-written
    cli.config.write_text(monitor_config(tmp_path, flow).read_text())
    r = cli("report", "--since", "soon", check=2)
    assert "--since" in r.stderr and "7d" in r.stderr
    assert not (tmp_path / "state").exists()
    r = Cli(_no_monitor(tmp_path))("collect", check=2)
    assert "[monitor]" in r.stderr, r.stderr


def _no_monitor(tmp_path: Path) -> Path:
    path = tmp_path / "plain.toml"
    path.write_text(f'[certmgr]\nstate_dir = "{tmp_path / "state2"}"\n')
    return path


def test_report_json_is_json_of_the_documented_shape(flow: MailFlow, tmp_path: Path) -> None:
    rep = Cli(monitor_config(tmp_path, flow)).json("report", "--json")
    assert {"since", "until", "inbound", "outbound", "tlsrpt", "alerts"} <= set(rep)
    for d in ("inbound", "outbound"):
        assert {"sessions", "tls", "plaintext", "by_level", "by_protocol", "domains"} <= set(rep[d])
    json.dumps(rep)
