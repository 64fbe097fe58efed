"""The :class:`Store`: one object with every method of the store, each in the module of its intent."""

from __future__ import annotations

from certmgr.store.accounts import AccountStore
from certmgr.store.db import (
    DEFAULT_CONNECTIONS,
    SCHEMA_HEAD,
    can_write,
    current_revision,
    make_engine,
    migrate,
    read_only_engine,
    sqlite_path,
)
from certmgr.store.decisions import DecisionStore
from certmgr.store.deployments import DeploymentStore
from certmgr.store.inventory import InventoryStore
from certmgr.store.leases import LeaseStore
from certmgr.store.steps import StepStore
from certmgr.store.versions import VersionStore


class Store(InventoryStore, LeaseStore, StepStore, VersionStore, DeploymentStore, AccountStore, DecisionStore):
    """The inventory.  ``read_only`` (status, check, metrics, calendar): an existing SQLite
    database at the current schema is opened without writing (see :func:`read_only_engine`),
    so those commands work on a full disk or a read-only state directory."""

    def __init__(self, url: str, *, read_only: bool = False, connections: int = DEFAULT_CONNECTIONS) -> None:
        self.url = url
        self.read_only = False
        self._writer = None
        path = sqlite_path(url)
        if read_only and path is not None and path.exists():
            engine = read_only_engine(path)
            if current_revision(engine) == SCHEMA_HEAD:
                self.engine, self.read_only = engine, True
                return
            engine.dispose()  # an older schema: migrate it (this writes) as any command would
        self.engine = make_engine(url, connections)
        migrate(self.engine)

    def cannot_write(self) -> str | None:
        """Why a write would fail now, or None (read-only commands skip what they would store)."""
        return can_write(self.url)

    def close(self) -> None:
        self.engine.dispose()
        if self._writer is not None:
            self._writer.dispose()
