"""The typed config: what ``certmgr.toml`` says once it is loaded and validated (:mod:`certmgr.config.load`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from certmgr.config.toml import find_line
from certmgr.errors import ConfigError, ConfigErrors
from certmgr.pki.keytypes import SlotKey, slot_key
from certmgr.pki.names import hostname_key

if TYPE_CHECKING:
    from certmgr.dns.settings import DaneSettings, MtaStsSettings
    from certmgr.monitor.config import MonitorConfig

DEFAULT_CONFIG = "/etc/certmgr/certmgr.toml"
DEFAULT_STATE_DIR = "/var/lib/certmgr"


DEFAULT_REMINDERS = (30, 14, 7, 3, 1)


@dataclass(frozen=True)
class ProviderConfig:
    """One ``[issuer.X]``, ``[deploy.X]`` or ``[notify.X]`` table."""

    kind: str  # "issuer" | "deploy" | "notify"
    name: str
    type: str
    options: Mapping[str, Any]
    line: int | None = None
    #: the config file that holds the table (the main file or an included one)
    file: str = ""

    @property
    def table(self) -> str:
        return f"{self.kind}.{self.name}"


@dataclass(frozen=True)
class NotifyConfig(ProviderConfig):
    reminders: tuple[int, ...] = DEFAULT_REMINDERS
    calendar: bool = False
    on_success: bool = False


@dataclass(frozen=True)
class MtaConfig:
    hostname: str
    names: tuple[str, ...]  # extra SANs (hostname not included)
    key_types: tuple[str, ...]
    issuer: str
    deploy: tuple[str, ...] = ()
    smtp_host: str = ""
    smtp_port: int = 25
    #: how the probe talks to smtp_host:smtp_port: "smtp" | "imap" | "pop3", STARTTLS or implicit TLS
    probe_protocol: str = "smtp"
    probe_implicit_tls: bool = False
    notify: tuple[str, ...] = ()
    renew_before_days: float | None = None
    #: keep the same key across renewals (DANE "3 1 1" TLSA records pin it)
    reuse_key: bool = False
    #: check the MTA's TLSA records: never deploy a certificate they do not match
    dane: bool = True
    #: ``dane = { publish = "NAME", ... }``: certmgr publishes the TLSA records in [dns.NAME] and rolls them over
    dane_publish: DaneSettings | None = None

    @property
    def all_names(self) -> tuple[str, ...]:
        return (self.hostname, *self.names)

    @property
    def slot_keys(self) -> tuple[SlotKey, ...]:
        """One slot per configured key type, in the order of ``key_types``."""
        return tuple(slot_key(self.hostname, kt) for kt in self.key_types)


@dataclass(frozen=True)
class Settings:
    state_dir: Path
    database: str
    trust: Path | None = None
    concurrency: int = 16
    warning_days: int = 21
    critical_days: int = 7
    metrics_listen: str = "127.0.0.1:9420"
    #: where the name checks ask DNS ("host:port"); None: the system's resolver
    resolver: tuple[str, int] | None = None


@dataclass(frozen=True)
class DaemonSettings:
    """The ``[daemon]`` table: how often `certmgr run` does each job (seconds; 0 switches
    the probe or ARI job off)."""

    renew_interval: int = 600
    probe_interval: int = 900
    remind_interval: int = 300
    ari_interval: int = 3600
    #: reading the mail logs and TLS reports of ``[monitor]`` (0 when there is no such table)
    collect_interval: int = 300
    #: re-checking every [[partner]] (alerts when an enforced one falls below its level)
    partner_interval: int = 86400
    #: loopback address:port of the /metrics endpoint; "" turns it off
    metrics_listen: str = "127.0.0.1:9420"


#: Postfix TLS security levels a partner may require, weakest first
PARTNER_LEVELS = ("encrypt", "verify", "secure", "dane", "dane-only")
DEFAULT_PARTNER_LEVEL = "verify"
#: deployer types that install the outbound TLS policy for partners (a Postfix or Exim policy map)
PARTNER_DEPLOYERS = ("postfix", "exim")


@dataclass(frozen=True)
class PartnerSpec:
    """One ``[[partner]]`` table: a recipient domain that must get TLS at ``require``."""

    domain: str  # IDNA, lower case, no trailing dot
    require: str = DEFAULT_PARTNER_LEVEL
    #: names accepted in the certificate (verify/secure); a leading dot accepts any subdomain
    match: tuple[str, ...] = ()
    deploy: tuple[str, ...] = ()
    notify: tuple[str, ...] = ()
    force: bool = False

    def __post_init__(self) -> None:
        if self.require not in PARTNER_LEVELS:
            raise ValueError(f"require must be one of {', '.join(PARTNER_LEVELS)}, not {self.require!r}")


@dataclass(frozen=True)
class Config:
    path: Path
    settings: Settings
    issuers: Mapping[str, ProviderConfig]
    deploys: Mapping[str, ProviderConfig]
    notifies: Mapping[str, NotifyConfig]
    mtas: tuple[MtaConfig, ...]
    #: the raw text, kept so provider errors can be given a line number
    text: str = field(default="", repr=False)
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    #: deploy target -> the ``primary = "host"`` of its table (the certificate served without SNI)
    primaries: Mapping[str, str] = field(default_factory=dict)
    #: ``[dns.NAME]``: zones certmgr may update (kind "dns", built by the registry)
    dns: Mapping[str, ProviderConfig] = field(default_factory=dict)
    #: ``[mta_sts."domain"]``
    mta_sts: Mapping[str, MtaStsSettings] = field(default_factory=dict)
    #: file -> text of every config file read, the main file first, then the included ones
    texts: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: the ``[monitor]`` table (mail logs, TLS reports, the report mail); None when absent
    monitor: MonitorConfig | None = None
    #: the ``[[partner]]`` tables
    partners: tuple[PartnerSpec, ...] = ()

    def target_mtas(self, target: str) -> tuple[MtaConfig, ...]:
        """The MTAs a deploy target serves, its primary first (``primary`` on the deploy table,
        default the first [[mta]] that lists it): one MTA instance serving several hostnames."""
        mtas = [m for m in self.mtas if target in m.deploy]
        primary = self.primaries.get(target)
        mtas.sort(key=lambda m: m.hostname != primary)
        return tuple(mtas)

    def mta(self, hostname: str) -> MtaConfig:
        want = hostname_key(hostname)
        for m in self.mtas:
            if m.hostname == want:
                return m
        known = ", ".join(m.hostname for m in self.mtas) or "none"
        from certmgr.errors import UsageError

        raise UsageError(f"{hostname} is not a configured MTA (configured: {known})")

    def locate(self, err: ConfigError) -> ConfigError:
        """Fill in file and line for an error raised while building a provider (in the file
        that holds the provider's table)."""
        if isinstance(err, ConfigErrors):
            return ConfigErrors([self.locate(e) for e in err.errors], list(self.texts))
        file, text = str(self.path), self.text
        kind, _, rest = (err.table or "").partition(".")
        tables: Mapping[str, ProviderConfig] = {"issuer": self.issuers, "deploy": self.deploys,
                                                "notify": self.notifies, "dns": self.dns}.get(kind, {})
        p = tables.get(rest.split(".")[0])
        if p is not None and p.file:
            file, text = p.file, self.texts.get(p.file, text)
        line = err.line or find_line(text, err.table, err.key)
        return ConfigError(err.message, file=file, table=err.table, key=err.key, line=line)
