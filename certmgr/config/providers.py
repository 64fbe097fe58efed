"""The provider tables ([issuer.*], [deploy.*], [notify.*], [dns.*]): the core's keys of each
(type, secrets, reminders, the deploy target's primary); each provider checks the rest when it is built."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from certmgr.config.model import (
    DEFAULT_REMINDERS,
    MtaConfig,
    NotifyConfig,
    ProviderConfig,
)
from certmgr.config.toml import Loader
from certmgr.errors import ConfigError
from certmgr.pki.names import NameError_, normalize_hostname

PROVIDER_KINDS = ("issuer", "deploy", "notify", "dns")


#: keys whose values are secrets: they must come from <key>_file or <key>_env
_SECRET_KEY = re.compile(r"(^|_)(password|passwd|secret|hmac|hmac_key|token|tsig_key|api_key)$")


def parse_providers(ld: Loader, raw: Any, kind: str, out: dict[str, ProviderConfig],
                     broken: set[tuple[str, str]]) -> None:
    """Add the [kind.NAME] tables of one file to ``out``; a table with an error is reported
    and its name noted in ``broken``."""
    if not isinstance(raw, dict):
        ld.report(ld.error(f"must be tables like [{kind}.NAME]", kind, None))
        return
    for name, table in raw.items():
        where = f"{kind}.{name}"
        if name in out or (kind, name) in broken:
            first = out.get(name)
            ld.report(ld.error(f"is already defined{f' at {first.file}:{first.line}' if first else ''}; "
                               "define each provider once", where, None))
            continue
        try:
            if not re.match(r"^[A-Za-z0-9_-]+$", name):
                raise ld.error("name may hold only letters, digits, '-' and '_'", where, None)
            if not isinstance(table, dict):
                raise ld.error(f"must be a table [{where}]", where, None)
            ptype = table.get("type")
            if not isinstance(ptype, str) or not ptype:
                raise ld.error("is required (the provider type, see `certmgr providers`)", where, "type")
            _refuse_inline_secrets(ld, table, where)
        except ConfigError as e:
            ld.report(e)
            broken.add((kind, name))
            continue
        options = {k: v for k, v in table.items() if k != "type"}
        out[name] = ProviderConfig(kind, name, ptype, options, ld.line(where, None), ld.file)


def _refuse_inline_secrets(ld: Loader, table: Mapping[str, Any], where: str) -> None:
    for key, value in table.items():
        if isinstance(value, dict):
            _refuse_inline_secrets(ld, value, f"{where}.{key}")
        elif _SECRET_KEY.search(key) and not key.endswith(("_file", "_env")):
            raise ld.error(
                f"secrets are not accepted inline; put it in a file and set {key}_file, "
                f"or in an environment variable and set {key}_env",
                where,
                key,
            )


def notify_config(ld: Loader, p: ProviderConfig) -> NotifyConfig:
    opts = dict(p.options)
    reminders = opts.pop("reminders", list(DEFAULT_REMINDERS))
    if (
        not isinstance(reminders, list)
        or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 365 for d in reminders)
    ):
        raise ld.error(f"must be a list of whole days between 0 and 365, got {reminders!r}", p.table, "reminders")
    calendar = opts.pop("calendar", False)
    on_success = opts.pop("on_success", False)
    for key, val in (("calendar", calendar), ("on_success", on_success)):
        if not isinstance(val, bool):
            raise ld.error(f"must be true or false, got {val!r}", p.table, key)
    return NotifyConfig(
        p.kind, p.name, p.type, opts, p.line, p.file,
        reminders=tuple(sorted(set(reminders), reverse=True)), calendar=calendar, on_success=on_success,
    )


def parse_primaries(loaders: Mapping[str, Loader], deploys: dict[str, ProviderConfig],
                     mtas: list[MtaConfig]) -> dict[str, str]:
    """Take the core key ``primary`` out of each deploy table (the provider never sees it)."""
    out: dict[str, str] = {}
    for name, p in list(deploys.items()):
        if "primary" not in p.options:
            continue
        value = p.options["primary"]
        served = [m.hostname for m in mtas if name in m.deploy]
        try:
            host = normalize_hostname(value) if isinstance(value, str) else None
        except NameError_:
            host = None
        if host is None or host not in served:
            ld = loaders[p.file]
            ld.report(ld.error(f"must be the hostname of an [[mta]] that lists deploy = [\"{name}\"] "
                               f"({', '.join(served) or 'none does'}), got {value!r}", p.table, "primary"))
            continue
        out[name] = host
        deploys[name] = replace(p, options={k: v for k, v in p.options.items() if k != "primary"})
    return out
