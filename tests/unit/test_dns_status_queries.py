"""`status` reads the DANE rollover of every MTA and the MTA-STS state of every domain from the
store in the same number of statements for 2 MTAs as for 40 (no query per MTA or domain)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from certmgr.cli import main
from certmgr.config.load import load_config
from certmgr.dns.rollover import Rollover
from certmgr.store.dns import DANE, MTA_STS, DnsStore, default_store
from tests.integration.test_query_count import counting
from tests.unit.test_config_dns import HEAD, STS, write


def _seeded(root: Path, n: int) -> Path:
    """``n`` DANE MTAs and one MTA-STS domain, each with a recorded state in the store."""
    root.mkdir()
    mtas = "".join(f'\n[[mta]]\nhostname = "mx{i}.example.com"\nissuer = "le"\ndane = {{ publish = "corp" }}\n'
                   for i in range(n))
    path = write(root, HEAD + mtas + STS)
    state_dir = load_config(path).settings.state_dir
    state_dir.mkdir(parents=True)
    store = default_store(state_dir)
    db = DnsStore(store, state_dir)
    for i in range(n):
        host = f"mx{i}.example.com"
        db.save(DANE, host, Rollover(host, ttl=300, current=("3 1 1 " + "aa" * 32,),
                                     pending=("3 1 1 " + "bb" * 32,),
                                     waiting_since="2026-11-30T12:00:00+00:00").to_json())
    db.save(MTA_STS, "example.com", json.dumps({"policy_id": "20261130T120000"}))
    store.close()
    return path


def test_status_reads_dane_and_mta_sts_state_in_a_fixed_number_of_statements(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    counts = {}
    for n in (2, 40):
        config = _seeded(tmp_path / f"n{n}", n)
        main(["-c", str(config), "status", "--json"])  # a first run settles the inventory
        capsys.readouterr()
        with counting() as statements:
            main(["-c", str(config), "status", "--json"])
        rows = json.loads(capsys.readouterr().out)
        dane = [r for r in rows if r.get("dane")]
        assert len(dane) == n and all(r["dane"]["step"] == "waiting" for r in dane), rows
        assert all(r["mta_sts"][0]["policy_id"] == "20261130T120000" for r in dane)
        counts[n] = len(statements)
    assert counts[2] == counts[40], counts
