"""Finding that nothing is due builds no model object.

What this proves: `renew` with nothing due, `renew --dry-run` and one daemon tick (the renew check
over every certificate, then the reminder pass) decide from plain rows read once, and load no
slot or certificate as an ORM object: at 10,000 certificates building them cost more than the
decisions themselves.  A due slot is still read as a model object, under its lease, by the code
that renews it (the renewal tests cover that).  Loads are counted with SQLAlchemy's instance
``load`` event; the certificates are seeded through `csr` and `import` with a local test CA.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import event

from certmgr.cli import main
from certmgr.config.load import load_config
from certmgr.runtime import Runtime
from certmgr.service.jobs import renew_job
from certmgr.store import CertVersion, ManagedCert
from tests.peers.testca import TestCA, imported_inventory

CERTS = 12


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config of manual-CA MTAs, each with a certificate imported through `csr` + `import`."""
    return imported_inventory(tmp_path_factory.mktemp("due-rows"), CERTS, TestCA("due rows"))


@contextmanager
def model_loads() -> Iterator[Counter[str]]:
    """How many slots and certificate versions are loaded as ORM objects meanwhile."""
    counts: Counter[str] = Counter()

    def loaded(target: object, _context: object) -> None:
        counts[type(target).__name__] += 1

    for model in (ManagedCert, CertVersion):
        event.listen(model, "load", loaded)
    try:
        yield counts
    finally:
        for model in (ManagedCert, CertVersion):
            event.remove(model, "load", loaded)


def daemon_tick(config: Path) -> list[str]:
    rt = Runtime(load_config(config))
    try:
        return [renew_job(rt, lambda: False)]
    finally:
        rt.close()


def renew(*args: str) -> Callable[[Path], list[str]]:
    def run(config: Path) -> list[str]:
        assert main(["-c", str(config), "renew", "--json", *args]) == 0
        return []
    return run


COMMANDS: dict[str, Callable[[Path], list[str]]] = {
    "renew, nothing due": renew(),
    "renew --dry-run": renew("--dry-run"),
    "daemon tick": daemon_tick,
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_deciding_that_nothing_is_due_loads_no_model_object(
        command: str, inventory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    COMMANDS[command](inventory)  # once to settle what a first run does (schema, inventory sync)
    capsys.readouterr()
    with model_loads() as loads:
        said = COMMANDS[command](inventory)
    out = capsys.readouterr().out
    # it did decide about every certificate: nothing was due
    if said:
        assert said == [f"{CERTS} not-due"], said
    else:
        assert [o["action"] for o in json.loads(out)] == ["not-due"] * CERTS, out
    assert not loads, f"{command}: model objects loaded to find nothing due: {dict(loads)}"
