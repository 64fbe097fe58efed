"""What `status` and `check` show of a recorded TLSA rollover and MTA-STS policy; a rollover
waiting on DNS for longer than expected is a warning in `check`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from certmgr.config.load import load_config
from certmgr.dns.dane_run import save_state
from certmgr.dns.rollover import Rollover
from certmgr.dns.status import add_rollover, dane_state, mta_sts_state
from certmgr.store.dns import DnsStore, default_store
from tests.unit.test_config_dns import HEAD, MTA, STS, write

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_waiting_rollover_and_mta_sts_state_are_shown_and_late_is_a_warning(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, HEAD + MTA.replace("{dane}", '{ publish = "corp" }') + STS))
    mta, state_dir = cfg.mtas[0], cfg.settings.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    db = DnsStore(default_store(state_dir), state_dir)
    assert dane_state(db.snapshot(), mta, NOW) == {"publish": "corp", "step": "not started", "late": False}
    assert mta_sts_state(db.snapshot(), cfg, mta.hostname) == [
        {"domain": "example.com", "mode": "enforce", "step": "not started", "policy_id": None, "web_in_step": False}]

    rec = Rollover(mta.hostname, ttl=300, current=("3 1 1 " + "aa" * 32,), pending=("3 1 1 " + "bb" * 32,),
                   waiting_since=(NOW - timedelta(minutes=10)).isoformat())
    save_state(db, rec)
    shown = dane_state(db.snapshot(), mta, NOW)
    assert shown is not None and shown["step"] == "waiting" and shown["pending"] == list(rec.pending)
    assert not shown["late"]
    report: dict[str, Any] = {"hostname": mta.hostname, "status": "ok", "problems": []}
    add_rollover(report, cfg, NOW, db.snapshot())
    assert report["status"] == "ok" and report["dane_rollover"]["step"] == "waiting"

    save_state(db, Rollover(mta.hostname, ttl=300, current=rec.current, pending=rec.pending,
                                   waiting_since=(NOW - timedelta(hours=2)).isoformat()))
    report = {"hostname": mta.hostname, "status": "ok", "problems": []}
    add_rollover(report, cfg, NOW, db.snapshot())
    assert report["status"] == "warning" and "has waited on DNS since" in report["problems"][0]

    sts_dir = state_dir / "mta-sts" / "example.com"
    sts_dir.mkdir(parents=True)
    policy = "version: STSv1\nmode: enforce\nmx: mx1.example.com\nmax_age: 604800\n"
    (sts_dir / "state.json").write_text(json.dumps({"policy_id": "20261130T120000", "policy_text": policy,
                                                    "web_policy_text": policy}))
    assert mta_sts_state(db.snapshot(), cfg, mta.hostname)[0] == {
        "domain": "example.com", "mode": "enforce", "step": "published", "policy_id": "20261130T120000",
        "web_in_step": True}
