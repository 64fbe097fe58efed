"""Everything one certmgr process works with: config, state dir, store, providers."""

from __future__ import annotations

import json
import logging
import os
import socket
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from certmgr.config.model import Config, MtaConfig
from certmgr.interfaces import AccountRecord
from certmgr.pki.keytypes import SlotKey, slot_key
from certmgr.registry import Providers
from certmgr.store.files import atomic_write
from certmgr.store.rows import Rows, open_rows
from certmgr.store.statedir import StateDir

if TYPE_CHECKING:
    from certmgr.store import AcmeAccount, CertVersion, ManagedCert, Store

log = logging.getLogger("certmgr.runtime")


def node_id() -> str:
    """This process, as lease owners name it: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_is_dead(owner: str) -> bool:
    """True only for an owner on this machine whose process no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text = rest.split("/", 1)[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False


class Runtime:
    def __init__(self, config: Config, *, node: str | None = None, read_only: bool = False) -> None:
        """``read_only``: for commands that only read (status, check, metrics, calendar); the
        state dir and database are not written, so they work on a full or read-only disk."""
        self.config = config
        self.state = StateDir(config.settings.state_dir).ensure()  # checks an existing one, never changes it
        self.read_only = read_only
        self._store: Store | None = None
        self._rows: Rows | None = None
        if not read_only:
            self._store = self._open_store()  # created or migrated before the command does anything
        self.providers = Providers(config)
        self.node = node or node_id()
        self._synced = False

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def store(self) -> Store:
        """The store (of a read-only runtime: opened at first use, so that what only reads
        :attr:`rows` never imports SQLAlchemy)."""
        if self._store is None:
            self._store = self._open_store()
        return self._store

    @property
    def rows(self) -> Rows:
        """The read path of what only displays (:mod:`certmgr.store.rows`)."""
        if self._rows is None:
            self._rows = open_rows(self.config.settings.database, lambda: self.store.engine)
        return self._rows

    def _open_store(self) -> Store:
        from certmgr.store import Store

        return Store(self.config.settings.database, read_only=self.read_only,
                     connections=self.config.settings.concurrency)

    def close(self) -> None:
        """Close the providers, then the store; ``with Runtime(...) as rt:`` calls it."""
        self.providers.close()
        if self._rows is not None:
            self._rows.close()
        if self._store is not None:
            self._store.close()

    def sync_inventory(self) -> list[tuple[MtaConfig, ManagedCert]]:
        """One slot per (MTA, key algorithm) in the config, with its current row from the store.

        The config is written into the store once per Runtime (one transaction for every slot,
        which also reads them back); later calls read every slot in a single query, so callers
        may ask often.
        """
        if self.read_only:
            return self._read_inventory()
        return self.configured(self.stored_slots())

    def stored_slots(self) -> list[ManagedCert]:
        """Every slot in the store (also those of MTAs no longer configured), the config's
        written first once per Runtime (see :meth:`sync_inventory`)."""
        self.sync_config()
        return self.store.slots()

    def sync_config(self) -> None:
        """Write the config's slots into the store, once per Runtime (one transaction, which
        builds no model objects: see :meth:`certmgr.store.inventory.InventoryStore.write_slots`)."""
        if not self._synced:
            from certmgr.store import SlotSpec

            self.store.write_slots([SlotSpec(mta.hostname, slot_key(mta.hostname, kt).key_alg, kt,
                                             mta.all_names, mta.issuer)
                                    for mta in self.config.mtas for kt in mta.key_types])
            self._synced = True

    @cached_property
    def mta_of(self) -> dict[SlotKey, MtaConfig]:
        """The configured MTA of every slot key, in config order (made once per Runtime: the
        decisions over 10,000 certificates look it up at every run)."""
        return {key: mta for mta in self.config.mtas for key in mta.slot_keys}

    def configured(self, slots: list[ManagedCert]) -> list[tuple[MtaConfig, ManagedCert]]:
        """The config's slots among ``slots`` (every slot of the store), in config order."""
        rows = {s.slot_key: s for s in slots}
        return [(mta, rows[key]) for mta in self.config.mtas for key in mta.slot_keys]

    def _read_inventory(self) -> list[tuple[MtaConfig, ManagedCert]]:
        """sync_inventory without writing: a slot not in the store yet is shown as planned."""
        from certmgr.store import ManagedCert

        rows = {s.slot_key: s for s in self.store.slots()}
        out = []
        for mta in self.config.mtas:
            for kt in mta.key_types:
                key = slot_key(mta.hostname, kt)
                slot = rows.get(key) or ManagedCert(
                    hostname=mta.hostname, key_alg=key.key_alg, key_type=kt, names=json.dumps(list(mta.all_names)),
                    issuer=mta.issuer, state="planned")
                out.append((mta, slot))
        return out

    def select(self, hosts: list[str]) -> list[tuple[MtaConfig, ManagedCert]]:
        """Slots of the named hosts (all when none named); unknown names are a UsageError.
        Once the inventory is synced, only the named hosts' slots are read."""
        wanted = {self.config.mta(h).hostname for h in hosts}
        if not wanted or self.read_only or not self._synced:
            return [(m, s) for m, s in self.sync_inventory() if not wanted or m.hostname in wanted]
        rows = {s.slot_key: s for s in self.store.slots(wanted)}
        return [(mta, rows[key]) for mta in self.config.mtas if mta.hostname in wanted for key in mta.slot_keys]

    def claim(self, slot_id: int, owner: str, seconds: float) -> bool:
        """Claim a slot; also take it from a process of this machine that has died holding it
        (a crashed `certmgr renew` need not block the next one until its lease runs out)."""
        if self.store.claim(slot_id, owner, seconds):
            return True
        holder = self.store.lease_owner(slot_id)
        if holder and holder != owner and owner_is_dead(holder):
            log.info("taking over slot %s from %s, which is no longer running", slot_id, holder)
            return self.store.take_over(slot_id, holder, owner, seconds)
        return False

    # ACME accounts: the key lives in a 0600 file, the URI in the store

    def _directory(self, issuer: str) -> str:
        return str(self.config.issuers[issuer].options.get("directory", ""))

    def load_account(self, issuer: str) -> AccountRecord | None:
        directory = self._directory(issuer)
        # "" is a row from before accounts were per machine: adopted when its key is readable here
        row = self.store.account(issuer, directory, socket.gethostname()) or self.store.account(issuer, directory, "")
        return _account_record(row)

    def load_version_account(self, version: CertVersion, issuer: str) -> AccountRecord | None:
        """The ACME account that ordered ``version`` (whatever its issuer is called now), when its
        key is readable on this machine; else the account of the configured ``issuer``."""
        if version.account_uri:
            for row in self.store.accounts_by_uri(version.account_uri):
                record = _account_record(row)
                if record is not None and record.directory == version.directory:
                    return record
        return self.load_account(issuer)

    def save_account(self, record: AccountRecord) -> None:
        path = self.state.account_key_path(record.issuer, record.directory, record.key_pem)
        if not path.exists():
            atomic_write(path, record.key_pem, 0o600)
        self.store.save_account(record.issuer, record.directory, socket.gethostname(), record.uri, str(path),
                                list(record.contact))
        self.store.log("account_saved", detail={"issuer": record.issuer, "uri": record.uri})


def _account_record(row: AcmeAccount | None) -> AccountRecord | None:
    if row is None:
        return None
    try:
        key_pem = Path(row.key_path).read_bytes()
    except OSError:
        return None  # key gone: the issuer registers a new account
    return AccountRecord(row.issuer, row.directory, key_pem, row.uri, tuple(json.loads(row.contact)))
