"""The database tables.  Times are aware UTC datetimes (SQLModel stores them as UTC).

Schema changes go through migrations in ``migrations/versions``; a test compares
these models with the migrated schema so neither drifts from the other.
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from certmgr.pki.keytypes import SlotKey
from certmgr.store import practice_rows, rows


def decode_names(stored: str) -> tuple[str, ...]:
    """The names column (a JSON list) as a tuple: the one place it is decoded."""
    return tuple(json.loads(stored))


class ManagedCert(SQLModel, table=True):
    """One certificate slot: an MTA hostname and a key algorithm (dual MTAs have two)."""

    __tablename__ = rows.SLOTS
    __table_args__ = (UniqueConstraint("hostname", "key_alg", name="uq_managed_host_alg"),)

    id: int | None = Field(default=None, primary_key=True)
    hostname: str = Field(index=True)
    key_alg: str  # rsa | ecdsa
    key_type: str  # rsa-2048, ecdsa-p256, ...
    names: str = "[]"  # JSON list of every SAN, hostname first: read it as all_names

    @property
    def slot_key(self) -> SlotKey:
        return SlotKey(self.hostname, self.key_alg)

    @property
    def all_names(self) -> tuple[str, ...]:
        return decode_names(self.names)
    issuer: str = ""
    state: str = "planned"
    current_version_id: int | None = None
    # a renewal in progress: key, CSR and order kept so an interrupted run resumes
    pending_key_path: str | None = None
    pending_csr: str | None = Field(default=None, sa_column=Column(Text))
    pending_order_url: str | None = None
    pending_since: datetime | None = None
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    last_error_permanent: bool = False
    last_attempt_at: datetime | None = None
    last_result: str | None = None  # success | failure
    next_retry_at: datetime | None = None
    renew_at: datetime | None = None
    ari_retry_at: datetime | None = None
    # work claims: a node holds the slot until lease_until
    lease_owner: str | None = None
    lease_until: datetime | None = None
    updated_at: datetime | None = None


class CertVersion(SQLModel, table=True):
    """Every certificate ever stored for a slot (history, never overwritten)."""

    __tablename__ = rows.VERSIONS

    id: int | None = Field(default=None, primary_key=True)
    managed_id: int = Field(index=True, foreign_key="managed_cert.id")
    serial: str
    subject_cn: str | None = None
    names: str = "[]"  # JSON list of the certificate's DNS names: read it as all_names

    @property
    def all_names(self) -> tuple[str, ...]:
        return decode_names(self.names)
    key_type: str = ""
    key_alg: str = ""
    key_bits: int = 0
    not_before: datetime
    not_after: datetime
    sha256: str = Field(index=True)
    # what issued this version, as it was then (renaming the issuer in the config changes nothing here)
    issuer: str = ""  # the [issuer.NAME] that issued it; "import" for a certificate imported by hand
    issuer_type: str = ""  # acme | manual ("" for rows from before this was recorded)
    directory: str | None = None  # the ACME directory URL
    account_uri: str | None = None  # the ACME account that ordered it (revocation uses it)
    issuer_cn: str | None = None
    issuer_dn: str | None = None  # the certificate's issuer distinguished name (RFC 4514)
    source: str = "acme"  # acme | import
    cert_path: str = ""
    chain_path: str = ""
    fullchain_path: str = ""
    key_path: str = ""
    order_url: str | None = None
    ari_start: datetime | None = None
    ari_end: datetime | None = None
    created_at: datetime
    revoked_at: datetime | None = None
    revoke_reason: str | None = None


class AcmeAccount(SQLModel, table=True):
    __tablename__ = "acme_account"
    # one account per machine: its key lives in that machine's state dir, never in the database
    __table_args__ = (UniqueConstraint("issuer", "directory", "node", name="uq_account_issuer_dir_node"),)

    id: int | None = Field(default=None, primary_key=True)
    issuer: str
    directory: str
    node: str = ""
    uri: str | None = None
    key_path: str
    contact: str = "[]"
    created_at: datetime
    updated_at: datetime


class OrderAttempt(SQLModel, table=True):
    __tablename__ = "order_attempt"

    id: int | None = Field(default=None, primary_key=True)
    managed_id: int = Field(index=True, foreign_key="managed_cert.id")
    issuer: str
    order_url: str | None = None
    state: str = "started"  # started | order_created | challenge_answered | finalized | issued | failed
    error: str | None = Field(default=None, sa_column=Column(Text))
    node: str | None = None
    started_at: datetime
    updated_at: datetime


class Event(SQLModel, table=True):
    """Append-only log of everything that happened."""

    __tablename__ = "event"

    id: int | None = Field(default=None, primary_key=True)
    ts: datetime = Field(index=True)
    hostname: str | None = Field(default=None, index=True)
    key_alg: str | None = None
    kind: str
    detail: str = Field(default="{}", sa_column=Column(Text))


class Deployment(SQLModel, table=True):
    __tablename__ = rows.DEPLOYMENTS

    id: int | None = Field(default=None, primary_key=True)
    managed_id: int = Field(index=True, foreign_key="managed_cert.id")
    version_id: int = Field(foreign_key="cert_version.id")
    target: str
    result: str  # installing | verified | rolled_back | failed
    reason: str | None = Field(default=None, sa_column=Column(Text))
    started_at: datetime
    verified_at: datetime | None = None


class ProbeRecord(SQLModel, table=True):
    """One stored probe of an MTA: its status, problems and report (what the probe saw is
    :class:`certmgr.probe.client.ProbeResult`)."""

    __tablename__ = rows.PROBES

    id: int | None = Field(default=None, primary_key=True)
    hostname: str | None = Field(default=None, index=True)
    target: str
    ts: datetime
    status: str
    problems: str = Field(default="[]", sa_column=Column(Text))
    served_sha256: str | None = None
    report: str = Field(default="{}", sa_column=Column(Text))


class Reminder(SQLModel, table=True):
    """A notification owed to someone: unique per certificate version, kind and notifier,
    so it is sent once even across restarts and several nodes."""

    __tablename__ = "reminder"
    __table_args__ = (UniqueConstraint("managed_id", "version_key", "kind", "notifier", name="uq_reminder_once"),)

    id: int | None = Field(default=None, primary_key=True)
    managed_id: int = Field(index=True, foreign_key="managed_cert.id")
    version_key: str
    kind: str  # threshold:30 | failure:1 | success | calendar:REQUEST
    notifier: str
    created_at: datetime
    sent_at: datetime | None = None
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    claimed_by: str | None = None
    claimed_until: datetime | None = None
    payload: str = Field(default="{}", sa_column=Column(Text))


class CalendarEvent(SQLModel, table=True):
    __tablename__ = "calendar_event"
    __table_args__ = (UniqueConstraint("managed_id", "notifier", name="uq_calendar_slot"),)

    id: int | None = Field(default=None, primary_key=True)
    managed_id: int = Field(foreign_key="managed_cert.id")
    notifier: str
    uid: str
    sequence: int = 0
    method: str = "REQUEST"
    version_key: str = ""
    dtstart: datetime | None = None
    updated_at: datetime


class JobState(SQLModel, table=True):
    __tablename__ = rows.JOBS

    name: str = Field(primary_key=True)
    last_run: datetime | None = None
    last_success: datetime | None = None
    next_run: datetime | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    node: str | None = None
    running_until: datetime | None = None


# ---------------------------------------------------------------------- mail TLS monitoring


class MonitorPosition(SQLModel, table=True):
    """Where the collector stopped reading a mail log (JSON: file identity, offset, hash of the
    last line, the parser's open sessions), saved in the transaction that adds its counts."""

    __tablename__ = practice_rows.MONITOR_POSITIONS

    source: str = Field(primary_key=True)
    position: str = Field(sa_column=Column(Text, nullable=False))
    unparsed: int = 0  # lines of this source the parser could not read, ever


class MonitorSessions(SQLModel, table=True):
    """SMTP sessions per hour, direction, domain, TLS level and protocol (a year stays small)."""

    __tablename__ = practice_rows.MONITOR_SESSIONS

    hour: str = Field(primary_key=True)  # ISO 8601 UTC truncated to the hour: sorts as time does
    direction: str = Field(primary_key=True)
    domain: str = Field(primary_key=True)
    level: str = Field(primary_key=True)
    protocol: str = Field(primary_key=True)
    sessions: int = 0


class MonitorTlsReport(SQLModel, table=True):
    """A TLS report (RFC 8460), once per report-id."""

    __tablename__ = practice_rows.TLSRPT_REPORTS

    report_id: str = Field(primary_key=True)
    organization: str
    start: datetime
    end: datetime = Field(index=True)
    received: datetime


class MonitorTlsResult(SQLModel, table=True):
    """Sessions of one report per policy and result type ("success" for the successful ones)."""

    __tablename__ = practice_rows.TLSRPT_RESULTS

    id: int | None = Field(default=None, primary_key=True)
    report_id: str = Field(foreign_key="monitor_tlsrpt.report_id", index=True)
    policy_type: str
    policy_domain: str
    result_type: str
    sessions: int
    mx_host: str = ""


# ---------------------------------------------------------------------- partner TLS watch


class PartnerState(SQLModel, table=True):
    """The last daily check of one partner domain and the degradation alert still open for it,
    so a restarted daemon neither repeats nor loses an alert (and metrics read it, not the network)."""

    __tablename__ = practice_rows.PARTNER_STATES

    domain: str = Field(primary_key=True)
    require: str
    status: str  # ok | warning | critical | unknown
    meets: bool
    enforced: bool
    problems: str = Field(sa_column=Column(Text, nullable=False))  # JSON list of sentences
    #: JSON list of {host, address, meets, not_after}: one per probed MX address
    addresses: str = Field(sa_column=Column(Text, nullable=False))
    checked_at: datetime
    #: when the "no longer meets its level" alert went out; None once recovered (or never)
    alerted_at: datetime | None = None


class MonitorPlainPeer(SQLModel, table=True):
    """SMTP sessions without TLS per hour, direction, domain and peer: who still sends or
    receives mail in plaintext (added in the transaction that adds the session counts)."""

    __tablename__ = practice_rows.PLAIN_PEERS

    hour: str = Field(primary_key=True)
    direction: str = Field(primary_key=True)
    domain: str = Field(primary_key=True)
    host: str = Field(primary_key=True)
    address: str = Field(primary_key=True)
    sessions: int = 0


# ---------------------------------------------------------------------- DANE rollover and MTA-STS


class DaneState(SQLModel, table=True):
    """The TLSA rollover of one MTA (:class:`certmgr.dns.rollover.Rollover` as JSON), recorded
    before each step is carried out, and the lease of the node carrying a step out."""

    __tablename__ = rows.DANE_STATES

    hostname: str = Field(primary_key=True)
    state: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: datetime
    lease_owner: str | None = None
    lease_until: datetime | None = None


class MtaStsState(SQLModel, table=True):
    """What went to the web target of one MTA-STS domain and what its published id stands for
    (:class:`certmgr.dns.mtasts.Published` as JSON), and the lease of the node at a step."""

    __tablename__ = rows.MTA_STS_STATES

    domain: str = Field(primary_key=True)
    state: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: datetime
    lease_owner: str | None = None
    lease_until: datetime | None = None


class DaneNextKey(SQLModel, table=True):
    """A key generated ahead for an MTA's next certificate: the key stays a 0600 file, its path
    and identity (SHA-256 of the SubjectPublicKeyInfo, the ``3 1 1`` data) are recorded here."""

    __tablename__ = "dane_next_key"

    hostname: str = Field(primary_key=True)
    key_type: str = Field(primary_key=True)
    path: str
    spki_sha256: str
    created_at: datetime
