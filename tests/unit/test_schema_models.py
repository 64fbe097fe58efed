"""The models and the migrations describe one schema.

A new database is created from the models and stamped at ``SCHEMA_HEAD`` (no migration runs);
an existing one is migrated.  Both must end equal, so a migration that differs from the models
fails here (alembic's ``compare_metadata``: tables, columns, types, indexes, constraints).
Server defaults are left out: migrations add them only to fill rows that existed before.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

import certmgr.store.models  # noqa: F401  (registers the tables)
from certmgr.store import Store
from certmgr.store.db import _MIGRATIONS, SCHEMA_HEAD, current_revision, make_engine


def migrate_from_empty(engine: Engine) -> None:
    """Run every migration, as an existing database at each revision would."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def differences(engine: Engine) -> list[Any]:
    """What alembic would generate to bring the database to the models (empty: they agree)."""
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                     SQLModel.metadata))


def test_migrations_from_empty_end_at_the_models(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'migrated.sqlite'}")
    migrate_from_empty(engine)
    assert current_revision(engine) == SCHEMA_HEAD
    assert differences(engine) == []


def test_new_database_is_created_from_the_models_without_migrating(tmp_path: Path) -> None:
    db = tmp_path / "new.sqlite"
    code = ("import sys\nfrom certmgr.store import Store\n"
            f"Store({f'sqlite:///{db}'!r}).close()\n"
            "print('alembic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False", "a new database is created from the models, not by alembic"
    store = Store(f"sqlite:///{db}")
    assert current_revision(store.engine) == SCHEMA_HEAD
    assert differences(store.engine) == []
    slot = store.sync_slot("mx1.example.com", "rsa", "rsa-2048", ["mx1.example.com"], "le")
    assert [s.id for s in store.slots()] == [slot.id]
