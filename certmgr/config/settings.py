"""The [certmgr] and [daemon] tables."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from certmgr.config.fields import host_port
from certmgr.config.model import (
    DEFAULT_STATE_DIR,
    DaemonSettings,
    Settings,
)
from certmgr.config.toml import Loader, Table
from certmgr.errors import ConfigError

#: the keys of each core table (the provider tables are checked by their providers)
CERTMGR_KEYS = frozenset({"state_dir", "database", "trust", "concurrency", "warning_days", "critical_days",
                          "metrics_listen", "resolver", "include"})


def parse_settings(ld: Loader, raw: Any) -> Settings:
    t = Table(ld, raw, "certmgr", allowed=CERTMGR_KEYS)  # `include` was read first, by load_config
    base = ld.path.parent
    state_dir = Path(t.get("state_dir", str, DEFAULT_STATE_DIR))
    if not state_dir.is_absolute():
        state_dir = (base / state_dir).resolve()
    database = t.get("database", str, f"sqlite:///{state_dir / 'certmgr.db'}")
    if not re.match(r"^(sqlite|postgresql(\+psycopg)?)://", database):
        raise t.err("database", "must be a sqlite:/// path or a postgresql+psycopg:// URL")
    if database.startswith("sqlite:///"):
        db_dir = Path(database.removeprefix("sqlite:///")).parent
        # the state directory is created on first use; any other directory must be there already
        if db_dir != state_dir and not db_dir.is_dir():
            raise t.err("database", f"the directory {db_dir} does not exist; create it (mode 0700) or "
                                    "leave database unset to keep it in state_dir")
    if re.search(r"://[^/@]*:[^/@]+@", database):
        raise t.err(
            "database",
            "has an inline password; use a .pgpass file or the PGPASSWORD environment variable instead",
        )
    trust = t.get("trust", str)
    trust_path = None
    if trust:
        trust_path = Path(trust) if Path(trust).is_absolute() else base / trust
        if not trust_path.is_file():
            raise t.err("trust", f"file {trust_path} does not exist")
        from certmgr.pki.trust import load_trust_file  # cryptography: only when a trust file is set

        try:
            load_trust_file(trust_path)
        except ConfigError as e:
            raise t.err("trust", e.message) from e
    concurrency = t.get("concurrency", int, 16)
    if not 1 <= concurrency <= 256:
        raise t.err("concurrency", f"must be between 1 and 256, got {concurrency}")
    warning = t.get("warning_days", int, 21)
    critical = t.get("critical_days", int, 7)
    if not 0 <= critical <= warning:
        raise t.err("critical_days", "must be between 0 and warning_days")
    listen = t.get("metrics_listen", str, "127.0.0.1:9420")
    resolver_text = t.get("resolver", str)
    resolver = host_port(resolver_text, 53, lambda m: t.err("resolver", m)) if resolver_text else None
    t.finish()
    return Settings(state_dir, database, trust_path, concurrency, warning, critical, listen, resolver)


DAEMON_KEYS = frozenset({"renew_interval", "probe_interval", "remind_interval", "ari_interval", "collect_interval",
                         "partner_interval", "metrics_listen"})


def parse_daemon(ld: Loader, raw: Any, default_listen: str) -> DaemonSettings:
    t = Table(ld, raw, "daemon", allowed=DAEMON_KEYS)
    defaults = DaemonSettings()
    intervals: dict[str, int] = {}
    for key in ("renew_interval", "probe_interval", "remind_interval", "ari_interval", "collect_interval",
                "partner_interval"):
        value = t.get(key, int, getattr(defaults, key))
        # probing, ARI and collecting may be switched off (0): monitoring runs `certmgr check`, the CA
        # has no ARI, cron runs `certmgr collect` (or `certmgr partners`)
        low = 0 if key in ("probe_interval", "ari_interval", "collect_interval", "partner_interval") else 1
        if not low <= value <= 7 * 86400:
            raise t.err(key, f"must be a number of seconds between {low} and 604800, got {value}")
        intervals[key] = value
    # [certmgr] metrics_listen is the older place of this setting and stays accepted
    listen = t.get("metrics_listen", str, default_listen)
    if listen:
        host_port(listen, 9420, lambda m: t.err("metrics_listen", m))
    t.finish()
    return DaemonSettings(**intervals, metrics_listen=listen)
