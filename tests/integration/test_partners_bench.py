"""The partner-check benchmark holds its limit: 200 partner domains in at most 10 s."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
BENCH = Path(__file__).resolve().parents[2] / "bench" / "partners_bench.py"


def test_200_partner_domains_within_10_seconds(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("partners_bench", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--domains", "200"]) == 0, capsys.readouterr().out
    assert "200 ok" in capsys.readouterr().out
