"""Two nodes sharing one PostgreSQL database: only one acts on a DANE rollover step at a time
(the lease on the MTA's row in ``dane_state``), also when both make the row at once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.postgres import Postgres, running_postgres
from tests.unit.test_store_dns import race

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with running_postgres() as pg:
        yield pg


def test_two_nodes_on_postgres_only_one_acts_on_a_rollover_step(postgres: Postgres, tmp_path: Path) -> None:
    race(postgres.create_database("dns_lease"), tmp_path)
