"""Inventory and history: the only package that opens database sessions.

Callers get detached model objects (plain values) back; every change is one short
transaction.  :class:`Store` (:mod:`~certmgr.store.store`) is the one object callers hold; its
methods live in the module of their intent:

* :mod:`~certmgr.store.inventory` -- slots from the config, and reads of every slot at once
* :mod:`~certmgr.store.leases` -- claiming a slot (so two nodes never renew one certificate)
* :mod:`~certmgr.store.steps` -- each lifecycle step in one transaction, orders, the event log
* :mod:`~certmgr.store.versions` -- the certificates a slot had
* :mod:`~certmgr.store.deployments` -- deployments and probe results
* :mod:`~certmgr.store.accounts` -- ACME accounts
* :mod:`~certmgr.store.decisions` -- plain rows the renew check and the reminder pass decide from

What only displays (``status``, ``metrics``) reads through :mod:`~certmgr.store.rows` instead:
plain rows from the database driver, without importing SQLAlchemy for SQLite.

The service side (reminders, calendar events, job state) is :mod:`certmgr.store.queue`; the
mail TLS monitor's tables are :mod:`certmgr.store.monitor`.

Importing this package imports no SQLAlchemy: the names below are loaded when first used, so
the plain modules of the package (``rows``, ``monitor_types``, ``files``, ``statedir``) stay
cheap for the commands that never open a session.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from certmgr.times import utcnow

if TYPE_CHECKING:
    from certmgr.store.inventory import SlotSpec
    from certmgr.store.models import (
        AcmeAccount,
        CertVersion,
        Deployment,
        Event,
        ManagedCert,
        OrderAttempt,
        ProbeRecord,
    )
    from certmgr.store.store import Store

__all__ = ["AcmeAccount", "CertVersion", "Deployment", "Event", "ManagedCert", "OrderAttempt", "ProbeRecord",
           "SlotSpec", "Store", "utcnow"]

#: name -> the module that defines it (imported at the first use of the name)
_LAZY = {
    "Store": "certmgr.store.store", "SlotSpec": "certmgr.store.inventory",
    **{name: "certmgr.store.models" for name in
       ("AcmeAccount", "CertVersion", "Deployment", "Event", "ManagedCert", "OrderAttempt", "ProbeRecord")},
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
