"""ACME accounts: which account each machine (its state dir holds the key) uses with a CA."""

from __future__ import annotations

import json

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from certmgr.store.base import StoreBase, utcnow
from certmgr.store.db import session_scope
from certmgr.store.models import AcmeAccount


class AccountStore(StoreBase):
    def account(self, issuer: str, directory: str, node: str) -> AcmeAccount | None:
        """The ACME account ``node`` (a machine: its state dir holds the key) uses with a CA."""
        with session_scope(self.engine) as s:
            return s.exec(select(AcmeAccount).where(
                AcmeAccount.issuer == issuer, AcmeAccount.directory == directory, AcmeAccount.node == node
            )).first()

    def accounts_by_uri(self, uri: str) -> list[AcmeAccount]:
        """Every stored row of the ACME account ``uri`` (one per machine that holds its key)."""
        with session_scope(self.engine) as s:
            return list(s.exec(select(AcmeAccount).where(AcmeAccount.uri == uri).order_by(col(AcmeAccount.id))))

    def save_account(self, issuer: str, directory: str, node: str, uri: str | None, key_path: str,
                     contact: list[str]) -> None:
        try:
            self._save_account(issuer, directory, node, uri, key_path, contact)
        except IntegrityError:
            # a process of this node that registered at the same moment saved first: the newest wins
            self._save_account(issuer, directory, node, uri, key_path, contact)

    def _save_account(self, issuer: str, directory: str, node: str, uri: str | None, key_path: str,
                      contact: list[str]) -> None:
        with session_scope(self.engine) as s:
            row = s.exec(select(AcmeAccount).where(
                AcmeAccount.issuer == issuer, AcmeAccount.directory == directory, AcmeAccount.node == node
            )).first()
            now = utcnow()
            if row is None:
                row = AcmeAccount(issuer=issuer, directory=directory, node=node, key_path=key_path,
                                  created_at=now, updated_at=now)
            row.uri, row.key_path, row.contact, row.updated_at = uri, key_path, json.dumps(contact), now
            s.add(row)
