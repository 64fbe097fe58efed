"""The partner TLS watch's table: the last check of each partner and its open alert.

``save`` records a check (one transaction for all partners) and never touches
``alerted_at``; ``set_alerted`` records that the degradation alert went out (or,
with None, that the partner recovered), after the notifier accepted it.  A check
of a partner whose alert is still open therefore does not alert again, even after
a restart; an alert whose sending failed is tried again at the next check.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from sqlmodel import select

from certmgr.store import Store
from certmgr.store.db import session_scope
from certmgr.store.models import PartnerState
from certmgr.store.partner_types import AddressState, PartnerRecord, encode_addresses, partner_record

__all__ = ["AddressState", "PartnerRecord", "PartnerStore"]


def _record(row: PartnerState) -> PartnerRecord:
    return partner_record(row.domain, row.require, row.status, row.meets, row.enforced, row.problems,
                          row.addresses, row.checked_at, row.alerted_at)


class PartnerStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    def states(self) -> dict[str, PartnerRecord]:
        """domain → its last check (partners never checked are absent)."""
        with session_scope(self.store.engine) as s:
            return {r.domain: _record(r) for r in s.exec(select(PartnerState))}

    def save(self, records: Iterable[PartnerRecord]) -> None:
        """Record a check of these partners; their open alerts stay as they are."""
        with session_scope(self.store.engine) as s:
            for rec in records:
                row = s.get(PartnerState, rec.domain) or PartnerState(
                    domain=rec.domain, require=rec.require, status=rec.status, meets=rec.meets,
                    enforced=rec.enforced, problems="[]", addresses="[]", checked_at=rec.checked_at)
                row.require, row.status, row.meets, row.enforced = rec.require, rec.status, rec.meets, rec.enforced
                row.problems = json.dumps(list(rec.problems))
                row.addresses = encode_addresses(rec.addresses)
                row.checked_at = rec.checked_at
                s.add(row)

    def set_alerted(self, domain: str, when: datetime | None) -> None:
        with session_scope(self.store.engine) as s:
            row = s.get(PartnerState, domain)
            if row is not None:
                row.alerted_at = when
                s.add(row)
