"""On a real PostgreSQL: every migration from empty ends at the models, and a new database is
created from the models and stamped at ``SCHEMA_HEAD``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from certmgr.store import Store
from certmgr.store.db import SCHEMA_HEAD, make_engine
from tests.peers.postgres import Postgres, running_postgres
from tests.unit.test_schema_models import differences, migrate_from_empty

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with running_postgres() as pg:
        yield pg


def test_migrations_from_empty_end_at_the_models_on_postgres(postgres: Postgres) -> None:
    engine = make_engine(postgres.create_database("migrated"))
    migrate_from_empty(engine)
    assert differences(engine) == []
    engine.dispose()


def test_new_database_is_created_from_the_models_on_postgres(postgres: Postgres) -> None:
    store = Store(postgres.create_database("created"))
    assert postgres.psql("SELECT string_agg(version_num, ',') FROM alembic_version", "created") == SCHEMA_HEAD
    assert differences(store.engine) == []
    store.close()
