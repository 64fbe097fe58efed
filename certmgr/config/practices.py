"""The tables of the SMTP/TLS practices configured once per site: [monitor] and [mta_sts."domain"]."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from certmgr.config.toml import Loader
from certmgr.errors import ConfigError, ConfigErrors
from certmgr.monitor.config import MonitorConfig, parse_monitor
from certmgr.options import did_you_mean
from certmgr.pki.names import NameError_, normalize_hostname

if TYPE_CHECKING:
    from certmgr.dns.settings import MtaStsSettings


def parse_monitor_table(ld: Loader, raw: Any, notifies: Collection[str]) -> MonitorConfig | None:
    """The ``[monitor]`` table, its errors reported at the line of the key (``logs[0].path`` → ``logs``);
    None when it has one."""
    try:
        monitor = parse_monitor(raw, file=ld.file)
    except ConfigError as e:
        for one in e.errors if isinstance(e, ConfigErrors) else [e]:
            key = one.key or None
            ld.report(ConfigError(one.message, file=ld.file, table="monitor", key=key, line=_monitor_line(ld, key)))
        return None
    missing = [name for name in monitor.report_notify if name not in notifies]
    known = ", ".join(sorted(notifies)) or "none"
    for name in missing:
        ld.report(ld.error(f"{name!r} is not a [notify.*] table{did_you_mean(name, notifies)} (configured: {known})",
                           "monitor", "report.notify"))
    return None if missing else monitor


def _monitor_line(ld: Loader, key: str | None) -> int | None:
    """The line of a ``[monitor]`` key; for ``logs[N].…`` the line of the N-th table of the
    ``logs`` array (written one per line or all on one)."""
    m = re.match(r"([a-z_]+)(?:\[(\d+)\])?", key or "")
    if m is None:
        return ld.line("monitor", None)
    line = ld.line("monitor", m[1])
    if m[2] is None or line is None:
        return line
    lines = ld.text.splitlines()
    seen = -1
    for i in range(line - 1, len(lines)):
        text = lines[i].partition("#")[0] if i >= line else lines[i].partition("=")[2].partition("#")[0]
        seen += text.count("{")
        if seen >= int(m[2]):
            return i + 1
    return line


def parse_mta_sts_tables(ld: Loader, raw: Any, refs: Mapping[str, Collection[str]]) -> dict[str, MtaStsSettings]:
    """``[mta_sts."example.com"]`` tables, one per domain (checked by :mod:`certmgr.dns.settings`);
    each wrong table is reported."""
    if not isinstance(raw, dict):
        ld.report(ld.error('must be tables like [mta_sts."example.com"]', "mta_sts", None))
        return {}
    from certmgr.dns.settings import parse_mta_sts  # cryptography and dnspython: only when configured

    out: dict[str, MtaStsSettings] = {}
    written: dict[str, str] = {}  # domain -> the table name as written
    for name, table in raw.items():
        if not isinstance(table, dict):  # [mta_sts] with mode = ... under it: the domain is missing
            ld.report(ld.error(f'is not a table: write one table per domain, like [mta_sts."example.com"], '
                               f"and {name} inside it", "mta_sts", name))
            continue
        try:
            domain = normalize_hostname(name)
        except NameError_ as e:
            ld.report(ld.error(f"is not a domain name: {e}", f'mta_sts."{name}"', None))
            continue
        if domain in written:
            ld.report(ld.error(f'{domain} is configured twice (also [mta_sts."{written[domain]}"]); keep one table',
                               f'mta_sts."{name}"', None))
            continue
        written[domain] = name
        try:
            sts = parse_mta_sts(domain, table, dns_tables=refs["dns"], deploy_targets=refs["deploy"],
                                issuers=refs["issuer"])
        except ConfigError as e:
            ld.report(ld.error(e.message, e.table, e.key))
            continue
        other = next((o for o in out.values() if o.web == sts.web), None)
        if other is not None:
            ld.report(ld.error(f"[deploy.{sts.web}] already serves the policy and certificate of {other.domain}: one "
                               "webroot holds one policy file and one certificate; give each domain its own "
                               "[deploy.*] web target", f'mta_sts."{name}"', "web"))
            continue
        out[domain] = sts
    return out
