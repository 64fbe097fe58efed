"""Every config in tests/corpus/configs is refused, with the reason and where it is.

Each file's first line is ``# expect: <text>``: the error must contain that text, name the
file, and (except for TOML syntax errors, which name the line) the table and the key.
The same files go through the real CLI in tests/integration/test_bad_input_corpus.py.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from certmgr.config.load import load_config
from certmgr.errors import ConfigError
from certmgr.registry import Providers

CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "configs"
CASES = sorted(CORPUS.glob("*.toml"))


def expected(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    m = re.match(r"^# expect: (.+)$", first)
    assert m, f"{path.name}: the first line must be '# expect: <text>'"
    return m.group(1).strip()


def refuse(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        cfg = load_config(path)
        providers = Providers(cfg)
        try:
            providers.build_all()
        finally:
            providers.close()
    return info.value


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 100, "the corpus covers every kind of bad input"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_bad_config_refused(path: Path, tmp_path: Path) -> None:
    # a copy in tmp_path: a relative state_dir then points there, and must stay absent
    copy = tmp_path / path.name
    shutil.copyfile(path, copy)
    err = refuse(copy)
    text = str(err)
    assert expected(path) in text, f"{path.name}: got {text!r}"
    assert err.file == str(copy) and text.startswith(str(copy)), text
    if path.stem.startswith("toml_"):
        assert err.line is not None, text
    else:
        assert err.table, f"{path.name}: the error names the table: {text!r}"
        assert f"[{err.table}]" in text
        if not text.split(": ", 1)[1].startswith(("must be a table", "must be an array", "unknown table",
                                                  "name may hold")):
            assert err.key and err.key in text, f"{path.name}: the error names the key: {text!r}"
    assert not (tmp_path / "state").exists(), "validation writes nothing"
