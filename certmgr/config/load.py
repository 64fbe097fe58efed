"""Load ``certmgr.toml`` into typed, validated objects.

Only the core's own keys are checked here; each provider validates its own
table when it is built (:mod:`certmgr.registry`).  Every error names the file,
the table, the key and (when it can be found) the line, and says what is allowed.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from certmgr.config.fields import guard, read_array
from certmgr.config.files import config_path, include_files, parse_toml, read_config_text
from certmgr.config.model import (
    Config,
    NotifyConfig,
    ProviderConfig,
    Settings,
)
from certmgr.config.mta import parse_defaults, parse_mta
from certmgr.config.partners import parse_partners
from certmgr.config.practices import parse_monitor_table, parse_mta_sts_tables
from certmgr.config.providers import PROVIDER_KINDS, notify_config, parse_primaries, parse_providers
from certmgr.config.settings import parse_daemon, parse_settings
from certmgr.config.toml import Loader
from certmgr.errors import ConfigError, raise_all
from certmgr.options import unknown_key

__all__ = ["config_path", "load_config"]

#: the tables of the main file; an included file holds only [[mta]], [[partner]] and provider tables
MAIN_TABLES = frozenset({"certmgr", "daemon", "defaults", *PROVIDER_KINDS, "mta", "mta_sts", "monitor", "partner"})


INCLUDED_TABLES = frozenset({*PROVIDER_KINDS, "mta", "partner"})


def load_config(path: Path | str) -> Config:
    """Read and validate the config file and the files it includes.

    Raise a ConfigError naming what is wrong (a :class:`ConfigErrors` with every error
    found, sorted by file and line, when there are several)."""
    path = Path(path)
    errors: list[ConfigError] = []
    main = Loader(path, read_config_text(path), errors)
    data = parse_toml(main)
    _check_tables(main, data, MAIN_TABLES)
    sources = [(main, data)]
    for included in include_files(main, data.get("certmgr")):
        try:
            ld = Loader(included, read_config_text(included, allow_empty=True), errors)
            sources.append((ld, parse_toml(ld)))
        except ConfigError as e:
            errors.append(e)
            continue
        _check_tables(ld, sources[-1][1], INCLUDED_TABLES)
    config = _parse(sources)
    raise_all(errors, [ld.file for ld, _ in sources])
    assert config is not None
    return config


def _check_tables(ld: Loader, data: dict[str, Any], allowed: frozenset[str]) -> None:
    for key in data:
        if key in allowed:
            continue
        if key in MAIN_TABLES:
            ld.report(ld.error("is allowed only in the main config file; an included file holds [[mta]], "
                               "[[partner]], [issuer.*], [deploy.*], [notify.*] and [dns.*] tables", key, None))
        else:
            ld.report(ld.error(unknown_key(key, allowed, "table"), key, None))


def _parse(sources: list[tuple[Loader, dict[str, Any]]]) -> Config | None:
    """Every table of every file, each error reported; None when any was found."""
    main, data = sources[0]
    settings = guard(main, lambda: parse_settings(main, data.get("certmgr", {})))
    loaders = {ld.file: ld for ld, _ in sources}
    providers: dict[str, dict[str, ProviderConfig]] = {kind: {} for kind in PROVIDER_KINDS}
    #: names defined with an error: an [[mta]] naming one is not told it is undefined
    broken: set[tuple[str, str]] = set()
    for ld, d in sources:
        for kind in PROVIDER_KINDS:
            if kind in d:
                parse_providers(ld, d[kind], kind, providers[kind], broken)
    issuers, deploys = providers["issuer"], providers["deploy"]
    notifies: dict[str, NotifyConfig] = {}
    for name, p in providers["notify"].items():
        n = guard(loaders[p.file], partial(notify_config, loaders[p.file], p))
        if n is None:
            broken.add(("notify", name))
        else:
            notifies[name] = n
    refs: dict[str, set[str]] = {
        kind: set(providers[kind]) | {name for k, name in broken if k == kind} for kind in PROVIDER_KINDS}
    defaults = parse_defaults(main, data["defaults"], refs) if "defaults" in data else None
    mtas = read_array(sources, "mta", "MTA", "hostname", partial(parse_mta, refs=refs, defaults=defaults),
                      lambda host, first: f"duplicate hostname {host} (also the [[mta]] at {first}); list every "
                                          "key type of one MTA in its `key` list instead")
    listen = settings.metrics_listen if settings else Settings.metrics_listen
    daemon = guard(main, lambda: parse_daemon(main, data.get("daemon", {}), listen))
    primaries = parse_primaries(loaders, deploys, mtas)
    mta_sts = parse_mta_sts_tables(main, data["mta_sts"], refs) if "mta_sts" in data else {}
    monitor = parse_monitor_table(main, data["monitor"], refs["notify"]) if "monitor" in data else None
    partners = parse_partners(sources, deploys, refs)
    if main.errors or settings is None or daemon is None:
        return None
    if monitor is None:
        daemon = replace(daemon, collect_interval=0)  # nothing to collect
    texts = {ld.file: ld.text for ld, _ in sources}
    return Config(main.path, settings, issuers, deploys, notifies, tuple(mtas), main.text, daemon, primaries,
                  providers["dns"], mta_sts, texts, monitor=monitor, partners=partners)
