"""The [[mta]] tables and [defaults], the values an MTA does not set itself."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from certmgr.config.fields import check_refs, host_port, ref_list
from certmgr.config.model import MtaConfig
from certmgr.config.providers import PROVIDER_KINDS
from certmgr.config.toml import Loader, Table
from certmgr.errors import ConfigError
from certmgr.interfaces import PROTOCOLS, protocol_for
from certmgr.pki.keytypes import KEY_TYPES, is_weak_key_type_name
from certmgr.pki.names import NameError_, normalize_hostname

if TYPE_CHECKING:
    from certmgr.dns.settings import DaneSettings


MTA_KEYS = frozenset({"hostname", "names", "key", "issuer", "deploy", "notify", "smtp", "protocol", "renew_before",
                      "reuse_key", "dane"})


#: the [[mta]] keys [defaults] may set; the others name one MTA
DEFAULT_KEYS = MTA_KEYS - {"hostname", "names", "smtp"}


def parse_key_types(value: str | list[str], err: Any) -> tuple[str, ...]:
    """``"rsa-2048"`` or ``["rsa-2048", "ecdsa-p256"]`` -> validated tuple (one per algorithm)."""
    items = [value] if isinstance(value, str) else value
    if not items:
        raise err("must name at least one key type")
    out: list[str] = []
    algs: set[str] = set()
    for item in items:
        if not isinstance(item, str):
            raise err(f"must be a key type string, got {item!r}")
        kt = item.strip().lower()
        if kt not in KEY_TYPES:
            allowed = ", ".join(KEY_TYPES)
            if is_weak_key_type_name(kt):
                raise err(f"{item!r} is weaker than certmgr allows (RSA-2048 / P-256 at least); use one of {allowed}")
            raise err(f"{item!r} is not a supported key type; use one of {allowed}")
        alg = KEY_TYPES[kt][0]
        if alg in algs:
            raise err(f"lists two {alg.upper()} keys; an MTA serves at most one RSA and one ECDSA certificate")
        algs.add(alg)
        out.append(kt)
    return tuple(out)


@dataclass(frozen=True)
class Defaults:
    table: Table
    #: the values read without error, as an [[mta]] holds them
    values: Mapping[str, Any]


def parse_defaults(ld: Loader, raw: Any, refs: Mapping[str, Collection[str]]) -> Defaults | None:
    """The [defaults] table: values for the [[mta]] keys an MTA does not set itself.  Each is
    checked here, once, as an [[mta]] would check it."""
    if not isinstance(raw, dict):
        ld.report(ld.error(f"must be a table, got {type(raw).__name__}", "defaults", None))
        return None
    for key in raw:
        if key in MTA_KEYS and key not in DEFAULT_KEYS:
            ld.report(ld.error(f"is not a default: it names one MTA, so set it in each [[mta]] (defaults may set "
                               f"{', '.join(sorted(DEFAULT_KEYS))})", "defaults", key))
    t = Table(ld, {k: v for k, v in raw.items() if k not in MTA_KEYS - DEFAULT_KEYS}, "defaults",
              allowed=DEFAULT_KEYS)
    values: dict[str, Any] = {}
    for key in sorted(DEFAULT_KEYS & set(t.data)):
        reported = len(ld.errors)
        value = t.check(partial(_MTA_FIELDS[key], t, refs))
        if len(ld.errors) == reported:
            values[key] = value
    return Defaults(t, values)


#: ``key = "..."`` strings already read without error, and what they say (10,000 MTAs write a
#: handful of different values)
_READ_KEYS: dict[str, tuple[str, ...]] = {}


def _key_types(t: Table, refs: Mapping[str, Collection[str]]) -> tuple[str, ...]:
    value = t.get("key", (str, list), "rsa-2048")
    if isinstance(value, str) and value in _READ_KEYS:
        return _READ_KEYS[value]
    parsed = parse_key_types(value, lambda m: t.err("key", m))  # an error is raised: never remembered
    if isinstance(value, str):
        _READ_KEYS[value] = parsed
    return parsed


def _issuer(t: Table, refs: Mapping[str, Collection[str]]) -> str:
    issuer: str = t.get("issuer", str, required=True)
    check_refs(t, "issuer", [issuer], refs["issuer"])
    return issuer


def _protocol(t: Table, refs: Mapping[str, Collection[str]]) -> str | None:
    protocol: str | None = t.get("protocol", str)
    if protocol is not None and protocol not in PROTOCOLS:
        raise t.err("protocol", f"must be one of {', '.join(PROTOCOLS)} (the protocol spoken at `smtp`), "
                                f"got {protocol!r}")
    return protocol


def _renew_before(t: Table, refs: Mapping[str, Collection[str]]) -> float | None:
    renew_before = t.get("renew_before", (int, float))
    if renew_before is not None and not 0 < renew_before <= 365:
        # no public CA issues for longer than 398 days; a longer lead time is a mistake
        raise t.err("renew_before", f"must be a number of days between 0 and 365 (more than 0), got {renew_before}")
    return float(renew_before) if renew_before is not None else None


#: how each key [defaults] may set is read, the same in [defaults] and in [[mta]]
_MTA_FIELDS: dict[str, Callable[[Table, Mapping[str, Collection[str]]], Any]] = {
    "key": _key_types,
    "issuer": _issuer,
    "deploy": ref_list("deploy"),
    "notify": ref_list("notify"),
    "protocol": _protocol,
    "renew_before": _renew_before,
    "reuse_key": lambda t, refs: t.get("reuse_key", bool, False),
    "dane": lambda t, refs: _dane(t, refs),
}


def _dane(t: Table, refs: Mapping[str, Collection[str]]) -> tuple[bool, DaneSettings | None]:
    """``dane = false`` or ``dane = { publish = "NAME", usage = "3 1 1" }`` (checked by
    :mod:`certmgr.dns.settings`): (DANE probed, how its TLSA records are published)."""
    value = t.get("dane", (bool, dict), True)
    if isinstance(value, bool):
        return value, None
    from certmgr.dns.settings import parse_dane  # cryptography: only when DANE publishing is configured

    try:
        return True, parse_dane(value, table=t.table, dns_tables=refs["dns"])
    except ConfigError as e:
        raise t.loader.error(e.message, e.table, e.key) from e


@cache
def _unset() -> Mapping[str, Any]:
    """What each [[mta]] key that [defaults] may set is when neither sets it (issuer has to be set)."""
    empty = Table(Loader(Path(), ""), {}, "mta")
    refs = {kind: () for kind in PROVIDER_KINDS}
    return {key: parse(empty, refs) for key, parse in _MTA_FIELDS.items() if key != "issuer"}


def parse_mta(ld: Loader, raw: Any, index: int, *, refs: Mapping[str, Collection[str]],
               defaults: Defaults | None) -> MtaConfig | None:
    """One [[mta]]; every wrong value in it is reported, and then None is returned.  A value
    taken from [defaults] or left unset is not read again (10,000 MTAs are read in one go)."""
    t = Table(ld, raw, f"mta #{index}", allowed=MTA_KEYS, defaults=defaults.table if defaults else None)
    hostname = t.check(partial(_hostname, t))
    names = (t.check(partial(_names, t, hostname or "")) or ()) if "names" in raw else ()
    values: dict[str, Any] = {}
    unset = _unset()
    for key, parse in _MTA_FIELDS.items():
        if key in raw:
            values[key] = t.check(partial(parse, t, refs))
        elif defaults is not None and key in defaults.values:
            values[key] = defaults.values[key]
        elif key in unset:
            values[key] = unset[key]
        else:  # required, or a wrong default: reported (once) where it is written
            values[key] = t.check(partial(parse, t, refs))
    if "smtp" in raw:
        smtp_host, smtp_port = t.check(lambda: host_port(t.get("smtp", str), 25, lambda m: t.err("smtp", m)),
                                       ("", 25))
    else:
        smtp_host, smtp_port = hostname or "", 25
    if t.failed or hostname is None:
        return None
    probe_protocol, probe_implicit = protocol_for(smtp_port, values["protocol"])
    return MtaConfig(
        hostname, names, values["key"], values["issuer"], values["deploy"], smtp_host, smtp_port, probe_protocol,
        probe_implicit, values["notify"], values["renew_before"], values["reuse_key"], *values["dane"],
    )


def _hostname(t: Table) -> str:
    try:
        return normalize_hostname(t.get("hostname", str, required=True))
    except NameError_ as e:
        raise t.err("hostname", f"{e}") from e


def _names(t: Table, hostname: str) -> tuple[str, ...]:
    names: list[str] = []
    for n in t.str_list("names"):
        try:
            fq = normalize_hostname(n, allow_wildcard=True)
        except NameError_ as e:
            raise t.err("names", f"{e}") from e
        if fq != hostname and fq not in names:
            names.append(fq)
    return tuple(names)
