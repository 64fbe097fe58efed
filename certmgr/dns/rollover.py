"""TLSA rollover for one MTA (RFC 7671 section 8.1, RFC 7672): pure policy, ``now`` passed in.

The MTA's TLSA RRset holds "current + next": the records of the keys it serves and of
the keys generated ahead for its next certificates.  A new certificate is deployed only
when every record it needs (its key's ``3 1 1``, its issuer's ``2 1 1``) has been served
by *every* authoritative server of the zone for at least 2 x the RRset TTL, so that
no resolver can still hold an RRset without it.  After the switch the records of the
retired keys stay until the old TTL has passed, then go.

:func:`decide` looks at the recorded :class:`Rollover` and what DNS shows and returns
the one next :class:`Decision`; the engine carries it out and records the new state
before the following step, so a crash at any point resumes where it stopped and a
served key never lacks a published record.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from certmgr.errors import ConfigError, PermanentError
from certmgr.probe import dane

#: Microsoft's senders stop looking at about 12 records; stay well below
DEFAULT_MAX_RECORDS = 8
USAGES = ("3 1 1", "2 1 1")


def parse_usage(value: str, *, table: str, key: str = "dane") -> tuple[str, ...]:
    """``"3 1 1"`` or ``"3 1 1 + 2 1 1"`` -> the usages, in that order."""
    parts = tuple(" ".join(p.split()) for p in value.split("+"))
    bad = [p for p in parts if p not in USAGES]
    if not parts or bad or len(set(parts)) != len(parts):
        raise ConfigError(f"usage must be \"3 1 1\", \"2 1 1\" or \"3 1 1 + 2 1 1\", got {value!r}",
                          table=table, key=key)
    return parts


def ee_record(public_key: PublicKeyTypes) -> str:
    """The ``3 1 1`` record pinning a key (known before any certificate for it exists)."""
    return str(dane.record_for_key(public_key))


def ta_record(issuer: x509.Certificate) -> str:
    """The ``2 1 1`` record pinning an issuing CA's key."""
    return str(dane.record_for(issuer, dane.USAGE_DANE_TA))


def records_for_chain(chain: Sequence[x509.Certificate], usages: Iterable[str]) -> tuple[str, ...]:
    """Every record a chain (leaf first) needs published before it may be served."""
    out: list[str] = []
    for usage in usages:
        if usage == "3 1 1":
            out.append(ee_record(chain[0].public_key()))
        elif usage == "2 1 1" and len(chain) > 1:
            out.append(ta_record(chain[1]))
    return tuple(out)


class Step(StrEnum):
    PUBLISH = "publish"  # make the RRset exactly the wanted records
    WAIT_VISIBLE = "wait-visible"  # some authoritative server does not serve them yet
    WAIT_TTL = "wait-ttl"  # served everywhere, but not for 2 x TTL yet
    DEPLOY = "deploy"  # the pending certificate may be served now
    RETIRE = "retire"  # the old TTL has passed: drop the retired records
    IDLE = "idle"  # nothing to do until the next renewal


@dataclass(frozen=True)
class Rollover:
    """What is recorded for one MTA's TLSA RRset between steps (JSON-serialisable)."""

    hostname: str
    port: int = 25
    ttl: int = 300
    max_records: int = DEFAULT_MAX_RECORDS
    current: tuple[str, ...] = ()  # records of the served keys
    next: tuple[str, ...] = ()  # records of the keys generated ahead
    retiring: tuple[str, ...] = ()  # records of keys no longer served
    retire_after: str | None = None  # ISO time after which ``retiring`` may go
    trust_anchors: tuple[str, ...] = ()  # 2 1 1 records of the CA's possible intermediates
    pending: tuple[str, ...] = ()  # records a certificate waiting to be deployed needs
    visible_since: str | None = None  # when ``pending`` was first seen on every server
    waiting_since: str | None = None  # when the pending certificate started to wait
    history: tuple[str, ...] = field(default=(), compare=False)

    @property
    def owner(self) -> str:
        return f"_{self.port}._tcp.{self.hostname}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Rollover:
        data = json.loads(text)
        for k in ("current", "next", "retiring", "trust_anchors", "pending", "history"):
            data[k] = tuple(data.get(k, ()))
        return cls(**data)


@dataclass(frozen=True)
class Decision:
    step: Step
    state: Rollover  # record this before carrying the step out
    records: tuple[str, ...] = ()  # PUBLISH: the whole RRset
    until: datetime | None = None  # WAIT_*: earliest time worth looking again
    why: str = ""
    late: bool = False  # waited on DNS for longer than expected: tell a person


def _t(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def wanted(state: Rollover) -> tuple[str, ...]:
    """The RRset as it should be: current, next, pending, retiring, then trust anchors
    (no duplicates).  More than ``max_records`` is refused, never published."""
    out = tuple(dict.fromkeys(
        r.lower() for r in (*state.current, *state.pending, *state.next, *state.retiring, *state.trust_anchors)
    ))
    if len(out) > state.max_records:
        raise PermanentError(
            f"DANE {state.owner}: the TLSA RRset would hold {len(out)} records, more than max_records = "
            f"{state.max_records} (senders stop looking); use fewer key types or usages, or raise the cap"
        )
    return out


def begin(state: Rollover, pending: Sequence[str], now: datetime) -> Rollover:
    """A new certificate was issued (for a key whose record may already be published):
    it waits until ``pending`` records have been visible everywhere for 2 x TTL."""
    pending = tuple(r.lower() for r in pending)
    if pending == state.pending:
        return state  # resumed: keep the visibility clock
    # a key generated ahead: its record's visibility clock has been running since it was published
    since = state.visible_since if state.next and set(pending) <= {*state.next, *state.trust_anchors} else None
    return replace(state, pending=pending, visible_since=since, waiting_since=now.isoformat(),
                   history=(*state.history, f"{now.isoformat()} issued, needs {len(pending)} record(s)"))


def deployed(state: Rollover, new_next: Sequence[str], now: datetime) -> Rollover:
    """The pending certificate is served now: its records become current, the old current
    ones retire after the TTL, and ``new_next`` (records of keys generated ahead) are added."""
    retired = tuple(r for r in state.current if r not in state.pending)
    return replace(
        state,
        current=state.pending,
        next=tuple(r.lower() for r in new_next),
        retiring=tuple(dict.fromkeys((*state.retiring, *retired))),
        retire_after=(now + timedelta(seconds=state.ttl)).isoformat() if retired or state.retiring else None,
        pending=(),
        visible_since=None,
        waiting_since=None,
        history=(*state.history, f"{now.isoformat()} deployed"),
    )


def decide(state: Rollover, published: Iterable[str], everywhere: frozenset[str], now: datetime, *,
           expected_wait: timedelta = timedelta(hours=1)) -> Decision:
    """The next step.

    ``published``: the RRset on the primary; ``everywhere``: the records every
    authoritative server serves (the intersection of their answers).
    """
    want = wanted(state)
    if set(r.lower() for r in published) != set(want):
        return Decision(Step.PUBLISH, state, records=want, why=f"{state.owner} TLSA should be {len(want)} record(s)")
    if state.pending:
        missing = [r for r in state.pending if r not in everywhere]
        waiting_since = _t(state.waiting_since) or now
        late = now - waiting_since > expected_wait
        if missing:
            return Decision(Step.WAIT_VISIBLE, replace(state, visible_since=None),
                            until=now + timedelta(seconds=min(state.ttl, 60)), late=late,
                            why=f"{len(missing)} record(s) of the new certificate not yet on every "
                                f"authoritative server of {state.owner}")
        since = _t(state.visible_since)
        if since is None:
            state = replace(state, visible_since=now.isoformat())
            since = now
        ready = since + timedelta(seconds=2 * state.ttl)
        if now < ready:
            return Decision(Step.WAIT_TTL, state, until=ready, late=late,
                            why=f"records on every server since {since.isoformat()}; "
                                f"deploy after 2 x TTL ({2 * state.ttl} s)")
        return Decision(Step.DEPLOY, state, why="the new certificate's records have been visible for 2 x TTL")
    if state.retiring:
        after = _t(state.retire_after)
        if after is not None and now < after:
            return Decision(Step.IDLE, state, until=after, why="retired records stay until the old TTL has passed")
        retired = replace(state, retiring=(), retire_after=None, visible_since=None,
                          history=(*state.history, f"{now.isoformat()} retired {len(state.retiring)}"))
        return Decision(Step.RETIRE, retired, records=wanted(retired), why="the old TTL has passed")
    # keep the visibility clock of the next keys' records running, for the next renewal
    next_seen = bool(state.next) and {*state.next, *state.trust_anchors} <= everywhere
    if next_seen and state.visible_since is None:
        state = replace(state, visible_since=now.isoformat())
    elif not next_seen and state.visible_since is not None:
        state = replace(state, visible_since=None)
    return Decision(Step.IDLE, state, why="current + next published")


def hierarchy_warning(chain: Sequence[x509.Certificate], state: Rollover) -> str | None:
    """With ``2 1 1`` records kept: a certificate from an intermediate none of them pins
    (the CA changed its hierarchy) is a warning now, before it would be an outage."""
    pinned = {*state.trust_anchors, *(r for r in state.current if r.startswith("2 1 1 "))}
    if not pinned or len(chain) < 2:
        return None
    record = ta_record(chain[1])
    if record in pinned:
        return None
    return (f"DANE {state.owner}: the new certificate is issued by {chain[1].subject.rfc4514_string()}, "
            f"whose key no published 2 1 1 record pins; `{record}` will be published and waited for "
            "before the certificate is deployed")
