"""The values of the partner TLS watch's table: what :mod:`certmgr.store.partners` stores and
what both it and the read path (:mod:`certmgr.store.practice_rows`) return, without the ORM."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class AddressState:
    host: str
    address: str | None
    meets: bool
    not_after: datetime | None = None


@dataclass(frozen=True)
class PartnerRecord:
    """One partner as its last check left it."""

    domain: str
    require: str
    status: str
    meets: bool
    enforced: bool
    problems: tuple[str, ...]
    addresses: tuple[AddressState, ...]
    checked_at: datetime
    alerted_at: datetime | None = None


def encode_addresses(addresses: Iterable[AddressState]) -> str:
    return json.dumps([{"host": a.host, "address": a.address, "meets": a.meets,
                        "not_after": a.not_after.isoformat() if a.not_after else None} for a in addresses])


def decode_addresses(text: str) -> tuple[AddressState, ...]:
    return tuple(AddressState(d["host"], d["address"], bool(d["meets"]),
                              datetime.fromisoformat(d["not_after"]) if d["not_after"] else None)
                 for d in json.loads(text))


def partner_record(domain: str, require: str, status: str, meets: bool, enforced: bool, problems: str,
                   addresses: str, checked_at: datetime, alerted_at: datetime | None) -> PartnerRecord:
    """A stored row (``problems`` and ``addresses`` as the JSON text of their columns) as a record."""
    return PartnerRecord(domain, require, status, bool(meets), bool(enforced), tuple(json.loads(problems)),
                         decode_addresses(addresses), checked_at, alerted_at)
