"""Field readers shared by the config tables: references to provider tables, host names,
host:port values, and reading one table on after another's error."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Collection, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from certmgr.config.toml import Loader, Table

if TYPE_CHECKING:
    from collections.abc import Sequence
from certmgr.errors import ConfigError
from certmgr.options import did_you_mean
from certmgr.pki.names import NameError_, normalize_hostname

T = TypeVar("T")


def guard(ld: Loader, parse: Callable[[], T]) -> T | None:
    """``parse()``, or None with its error reported: the next table is read all the same."""
    try:
        return parse()
    except ConfigError as e:
        ld.report(e)
        return None


def check_refs(t: Table, key: str, refs: list[str], defined: Collection[str]) -> None:
    for ref in refs:
        if ref not in defined:
            known = ", ".join(sorted(defined)) or "none"
            raise t.err(key, f"refers to [{key}.{ref}], which is not defined{did_you_mean(ref, defined)} "
                             f"(defined: {known})")


def ref_list(key: str) -> Callable[[Table, Mapping[str, Collection[str]]], tuple[str, ...]]:
    def parse(t: Table, refs: Mapping[str, Collection[str]]) -> tuple[str, ...]:
        values = t.str_list(key)
        check_refs(t, key, values, refs[key])
        return tuple(values)
    return parse


def hostname_key(t: Table, key: str) -> str:
    try:
        return normalize_hostname(t.get(key, str, required=True))
    except NameError_ as e:
        raise t.err(key, f"{e}") from e


def host_port(value: str, default_port: int, err: Any) -> tuple[str, int]:
    if value.count(":") > 1 and not value.startswith("["):
        # a bare IPv6 address has no port: "::1" is the address ::1, not "::" port 1
        try:
            return str(ipaddress.IPv6Address(value)), default_port
        except ValueError:
            raise err(f"must be host, host:port or [IPv6]:port, got {value!r}") from None
    if not value.isascii():  # an IDN host, written as in [[mta]] hostname: its A-label
        host, colon, port_text = value.rpartition(":") if re.search(r":\d+$", value) else (value, "", "")
        try:
            value = normalize_hostname(host) + colon + port_text
        except NameError_ as e:
            raise err(f"{e}") from None
    m = re.match(r"^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+))(?::(\d+))?$", value)
    if not m:
        raise err(f"must be host or host:port, got {value!r}")
    if m.group(1):
        try:
            ipaddress.IPv6Address(m.group(1))
        except ValueError:
            raise err(f"{m.group(1)!r} in brackets is not an IPv6 address") from None
    port = int(m.group(3)) if m.group(3) else default_port
    if not 0 < port < 65536:
        raise err(f"port must be 1-65535, got {port}")
    return m.group(1) or m.group(2), port


def read_array(sources: Sequence[tuple[Loader, dict[str, Any]]], table: str, noun: str, key: str,
               parse: Callable[[Loader, Any, int], T | None], duplicate: Callable[[str, str], str]) -> list[T]:
    """Every ``[[table]]`` of every file, read by ``parse(loader, raw, index)``; a table with an
    error is reported and left out, and so is a second table with the same ``key``
    (``duplicate(value, where the first is)`` says what to do instead)."""
    out: list[T] = []
    seen: dict[str, tuple[Loader, int]] = {}
    for ld, d in sources:
        raw = d.get(table, [])
        if not isinstance(raw, list):
            ld.report(ld.error(f"must be an array of tables: write each {noun} as [[{table}]]", table, None))
            continue
        for i, item in enumerate(raw):
            value = guard(ld, partial(parse, ld, item, i + 1))
            if value is None:
                continue
            name: str = getattr(value, key)
            if name in seen:
                first, index = seen[name]
                ld.report(ld.error(duplicate(name, f"{first.file}:{first.line(f'{table} #{index}', key)}"),
                                   f"{table} #{i + 1}", key))
                continue
            seen[name] = (ld, i + 1)
            out.append(value)
    return out
