"""``certmgr status`` shows the open mail TLS alerts of ``[monitor]`` (text and ``--json``) and
exits 1 while there are any, as ``check`` does for a warning; real mail through a real Postfix."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Cli
from tests.peers.mailflow import MailFlow

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailFlow]:
    f = MailFlow(tmp_path_factory.mktemp("monitor-status")).start()
    yield f
    f.stop()


def test_status_shows_the_open_monitor_alerts_and_exits_1(flow: MailFlow, tmp_path: Path) -> None:
    config = tmp_path / "certmgr.toml"
    config.write_text(f"""
[certmgr]
state_dir = "{tmp_path / 'state'}"

[[partner]]
domain = "plain.test"
require = "encrypt"

[monitor]
logs = [{{ type = "postfix", path = "{flow.mx.log}" }}]
alerts = {{ min_sessions = 2, tls_share = 0.9 }}
""")
    cli = Cli(config)
    assert cli.json("status", "--json") == []  # nothing collected: no alert, exit 0
    for n, (domain, starttls) in enumerate((("plain.test", False), ("verified.test", True)), start=1):
        flow.send(domain, starttls=starttls)
        flow.wait_delivered(n)
    cli("collect")

    shown = json.loads(cli("status", "--json", check=1).stdout)
    assert all(r["type"] == "monitor-alert" for r in shown)
    assert sorted((r["kind"], r["direction"], r["subject"]) for r in shown) == [
        ("plaintext-partner", "outbound", "plain.test"),
        ("tls-share-low", "inbound", ""), ("tls-share-low", "outbound", "")]
    partner = next(r for r in shown if r["kind"] == "plaintext-partner")
    assert partner["message"] == ("1 outbound sessions to enforced partner plain.test without TLS: "
                                  "127.0.0.1[127.0.0.1] (1)")
    text = cli("status", check=1).stdout  # piped: tab-separated, the alerts after the certificates
    assert "\nkind\tdirection\tsubject\tmessage\n" in text
    assert f"plaintext-partner\toutbound\tplain.test\t{partner['message']}\n" in text
    assert "Mail TLS alerts" in cli.on_terminal("status", check=1)
