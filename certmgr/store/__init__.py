"""Inventory and history: the only package that opens database sessions.

Callers get detached model objects (plain values) back; every change is one short
transaction.  :class:`Store` is the one object callers hold; its methods live in the module
of their intent:

* :mod:`~certmgr.store.inventory` -- slots from the config, and reads of every slot at once
* :mod:`~certmgr.store.leases` -- claiming a slot (so two nodes never renew one certificate)
* :mod:`~certmgr.store.steps` -- each lifecycle step in one transaction, orders, the event log
* :mod:`~certmgr.store.versions` -- the certificates a slot had
* :mod:`~certmgr.store.deployments` -- deployments and probe results
* :mod:`~certmgr.store.accounts` -- ACME accounts
* :mod:`~certmgr.store.views` -- plain rows of the columns a command shows (no ORM objects)
* :mod:`~certmgr.store.decisions` -- plain rows the renew check and the reminder pass decide from

The service side (reminders, calendar events, job state) is :mod:`certmgr.store.queue`; the
mail TLS monitor's tables are :mod:`certmgr.store.monitor`.
"""

from __future__ import annotations

from certmgr.store.accounts import AccountStore
from certmgr.store.base import utcnow
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
from certmgr.store.inventory import InventoryStore, SlotSpec
from certmgr.store.leases import LeaseStore
from certmgr.store.models import (
    AcmeAccount,
    CertVersion,
    Deployment,
    Event,
    ManagedCert,
    OrderAttempt,
    ProbeRecord,
)
from certmgr.store.steps import StepStore
from certmgr.store.versions import VersionStore
from certmgr.store.views import ViewStore

__all__ = ["AcmeAccount", "CertVersion", "Deployment", "Event", "ManagedCert", "OrderAttempt", "ProbeRecord",
           "SlotSpec", "Store", "utcnow"]


class Store(InventoryStore, LeaseStore, StepStore, VersionStore, DeploymentStore, AccountStore, ViewStore,
            DecisionStore):
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
