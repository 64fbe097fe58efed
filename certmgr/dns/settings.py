"""The config contract of DANE publishing and MTA-STS, checked before anything runs.

Per MTA: ``dane = { publish = "corp", usage = "3 1 1" }`` (``"3 1 1 + 2 1 1"`` for both;
``max_records`` and ``late_after`` optional), ``publish`` naming a ``[dns.NAME]`` table.  Per domain:
``[mta_sts."example.com"]`` with ``mode``, ``max_age``, ``dns``, ``web``, ``issuer``
(and optional ``mx`` patterns and ``rua`` for TLS-RPT).  Errors name the table and key.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from certmgr.dns.mtasts import check_settings
from certmgr.dns.rollover import DEFAULT_MAX_RECORDS, parse_usage
from certmgr.errors import ConfigError
from certmgr.options import unknown_key
from certmgr.pki.names import NameError_, normalize_hostname


@dataclass(frozen=True)
class DaneSettings:
    publish: str
    usages: tuple[str, ...]
    max_records: int = DEFAULT_MAX_RECORDS
    #: a rollover waiting on DNS longer than this (seconds) is a warning and a notice
    late_after: int = 3600
    #: with 2 1 1: PEM files of the issuing CA's possible intermediates for the MTA's key type,
    #: whose records are kept published so that a certificate from any of them is matched
    intermediates: tuple[str, ...] = ()


@dataclass(frozen=True)
class MtaStsSettings:
    domain: str
    mode: str
    max_age: int
    dns: str
    web: str
    issuer: str
    mx: tuple[str, ...] = ()
    rua: tuple[str, ...] = ()


def _unknown(value: Mapping[str, Any], known: Collection[str], table: str, prefix: str = "") -> None:
    for key in value:
        if key not in known:
            raise ConfigError(unknown_key(key, known), table=table, key=prefix + key)


def _str(value: Mapping[str, Any], key: str, table: str, prefix: str = "") -> str:
    v = value.get(key)
    if not isinstance(v, str) or not v:
        raise ConfigError("is required and must be a non-empty string", table=table, key=prefix + key)
    return v


#: the longest ``dane.late_after``: a year (a larger number would overflow the clock arithmetic)
MAX_LATE_AFTER = 365 * 86400


def parse_dane(value: Any, *, table: str, dns_tables: Collection[str]) -> DaneSettings | None:
    """An MTA's ``dane`` value: false/absent (today's guard only) or the publishing table."""
    if value is None or value is False or value is True:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError('must be true, false or { publish = "NAME", usage = "3 1 1" }', table=table, key="dane")
    _unknown(value, ("publish", "usage", "max_records", "late_after", "intermediates"), table, "dane.")
    publish = _str(value, "publish", table, "dane.")
    if publish not in dns_tables:
        known = ", ".join(sorted(dns_tables)) or "none"
        raise ConfigError(f"names no [dns.{publish}] table (defined: {known})", table=table, key="dane.publish")
    usages = parse_usage(str(value.get("usage", "3 1 1")), table=table, key="dane.usage")
    cap = value.get("max_records", DEFAULT_MAX_RECORDS)
    if not isinstance(cap, int) or isinstance(cap, bool) or not 2 <= cap <= 32:
        raise ConfigError("must be a whole number from 2 to 32", table=table, key="dane.max_records")
    late = value.get("late_after", 3600)
    if not isinstance(late, int) or isinstance(late, bool) or not 1 <= late <= MAX_LATE_AFTER:
        raise ConfigError(f"must be a whole number of seconds from 1 to {MAX_LATE_AFTER} (a year), got {late!r}",
                          table=table, key="dane.late_after")
    return DaneSettings(publish, usages, cap, late, _intermediates(value.get("intermediates", []), usages, table))


def _intermediates(value: Any, usages: tuple[str, ...], table: str) -> tuple[str, ...]:
    key = "dane.intermediates"
    if not isinstance(value, list) or not all(isinstance(v, str) and v.startswith("/") for v in value):
        raise ConfigError("must be a list of absolute paths of PEM files", table=table, key=key)
    if value and "2 1 1" not in usages:
        raise ConfigError('only means something with usage "2 1 1" (or "3 1 1 + 2 1 1")', table=table, key=key)
    from cryptography import x509

    for path in value:
        try:
            certs = x509.load_pem_x509_certificates(Path(path).read_bytes())
        except OSError as e:
            raise ConfigError(f"cannot read {path}: {e.strerror}", table=table, key=key) from None
        except ValueError:
            raise ConfigError(f"{path} holds no PEM certificate", table=table, key=key) from None
        for cert in certs:
            try:
                ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
            except x509.ExtensionNotFound:
                ca = False
            if not ca:
                raise ConfigError(f"{path} holds {cert.subject.rfc4514_string()}, which is not a CA certificate",
                                  table=table, key=key)
    return tuple(value)


def parse_mta_sts(domain: str, value: Any, *, dns_tables: Collection[str], deploy_targets: Collection[str],
                  issuers: Collection[str]) -> MtaStsSettings:
    table = f'mta_sts."{domain}"'
    if not isinstance(value, Mapping):
        raise ConfigError("must be a table", table=table)
    _unknown(value, ("mode", "max_age", "dns", "web", "issuer", "mx", "rua"), table)
    mode = str(value.get("mode", "testing"))
    max_age = value.get("max_age", 604800)
    if not isinstance(max_age, int) or isinstance(max_age, bool):
        raise ConfigError("must be a whole number of seconds", table=table, key="max_age")
    check_settings(mode, max_age, table=table)
    refs = {"dns": ("dns", dns_tables), "web": ("deploy", deploy_targets), "issuer": ("issuer", issuers)}
    names = {}
    for key, (kind, known) in refs.items():
        names[key] = _str(value, key, table)
        if names[key] not in known:
            raise ConfigError(f"names no [{kind}.{names[key]}] (defined: {', '.join(sorted(known)) or 'none'})",
                              table=table, key=key)
    lists = {}
    for key in ("mx", "rua"):
        v = value.get(key, [])
        if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
            raise ConfigError("must be a list of strings", table=table, key=key)
        lists[key] = tuple(v)
    for pattern in lists["mx"]:
        try:  # RFC 8461 3.2: a name, or "*." and a name (the wildcard covers one label)
            normalize_hostname(pattern, allow_wildcard=True)
        except NameError_ as e:
            raise ConfigError(f"{pattern!r} is not an MX name or a *.domain pattern: {e}",
                              table=table, key="mx") from None
    bad_rua = [u for u in lists["rua"] if not u.startswith(("mailto:", "https:"))]
    if bad_rua:
        raise ConfigError(f"TLS-RPT addresses start with mailto: or https:, got {bad_rua[0]!r}", table=table, key="rua")
    return MtaStsSettings(domain, mode, max_age, names["dns"], names["web"], names["issuer"], lists["mx"],
                          lists["rua"])
