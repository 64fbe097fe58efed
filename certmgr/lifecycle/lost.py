"""Is the inventory lost?  The database knows no certificate while the state directory holds
some: it was deleted or replaced, and a command that wrote now would order every certificate
again with new keys.  Every command that writes refuses then (:func:`refuse_if_lost`); `status`
warns; `certmgr recover` (:mod:`certmgr.lifecycle.recover`) rebuilds it.  Read through the
read path (:attr:`certmgr.runtime.Runtime.rows`), so `status` imports no ORM for it."""

from __future__ import annotations

from pathlib import Path

from certmgr.errors import StateError
from certmgr.runtime import Runtime


class InventoryLost(StateError):
    """The state directory holds certificates the database does not know: run `certmgr recover`."""


def stored_certificates(state_root: Path) -> list[Path]:
    """``certs/<host>/<alg>/<serial>/`` directories of the state dir."""
    return sorted(p.parent for p in state_root.glob("certs/*/*/*/fullchain.pem"))


def lost_inventory(rt: Runtime) -> str | None:
    """Why writing now would be unsafe (the database lost what the state dir holds), or None."""
    # a slot holding a pending key is a first issuance under way (or interrupted), not a lost inventory
    if rt.rows.has_versions() or rt.rows.has_pending_keys():
        return None
    stored = stored_certificates(rt.state.root)
    if not stored:
        return None
    hosts = sorted({p.parent.parent.name for p in stored})
    return (f"the database {rt.rows.url} knows no certificates, but the state directory {rt.state.root} "
            f"holds {len(stored)} (for {', '.join(hosts[:5])}{', …' if len(hosts) > 5 else ''}): the database "
            "was deleted or replaced. Going on would order every certificate again with new keys. "
            "Run `certmgr recover` to rebuild the inventory and history from the state directory, then try again")


def refuse_if_lost(rt: Runtime) -> None:
    """Raise :class:`InventoryLost` (exit 2) before a command that writes works on a lost inventory."""
    reason = lost_inventory(rt)
    if reason:
        rt.close()
        raise InventoryLost(reason)
