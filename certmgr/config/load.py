"""Load ``certmgr.toml`` into typed, validated objects.

Only the core's own keys are checked here; each provider validates its own
table when it is built (:mod:`certmgr.registry`).  Every error names the file,
the table, the key and (when it can be found) the line, and says what is allowed.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from certmgr.config.model import (
    DEFAULT_CONFIG,
    DEFAULT_REMINDERS,
    DEFAULT_STATE_DIR,
    Config,
    DaemonSettings,
    MtaConfig,
    NotifyConfig,
    ProviderConfig,
    Settings,
)
from certmgr.config.toml import Loader, Table, find_line
from certmgr.errors import ConfigError
from certmgr.interfaces import PROTOCOLS, protocol_for
from certmgr.pki.keytypes import KEY_TYPES
from certmgr.pki.names import NameError_, normalize_hostname

_WEAK_KEY = re.compile(r"^(rsa-(512|768|1024|1536)|ecdsa-p(160|192|224)|dsa.*|rsa-\d+)$")
#: keys whose values are secrets: they must come from <key>_file or <key>_env
_SECRET_KEY = re.compile(r"(^|_)(password|passwd|secret|hmac|hmac_key|token|tsig_key|api_key)$")

def config_path(cli_value: str | None) -> Path:
    return Path(cli_value or os.environ.get("CERTMGR_CONFIG") or DEFAULT_CONFIG)


#: a config larger than this is not a config someone wrote (and is not read whole into memory)
MAX_CONFIG_BYTES = 1 << 20


def read_config_text(path: Path) -> str:
    """The config file's text: a regular UTF-8 file (a leading BOM is accepted and dropped,
    as editors on some systems write one).  Anything else is refused at once, naming the
    file (and the line of a byte that is not UTF-8); a FIFO or device is never read."""
    try:
        # O_NONBLOCK: opening a FIFO with no writer must not hang; fstat then refuses it
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ConfigError(
            "config file not found (give -c PATH or set CERTMGR_CONFIG)", file=str(path)
        ) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a config file", file=str(path)) from None
    except OSError as e:
        raise ConfigError(f"cannot read the config file: {e.strerror or e}", file=str(path)) from e
    try:
        _refuse_unless_regular(os.fstat(fd), path)
        data = os.read(fd, MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"cannot read the config file: {e.strerror or e}", file=str(path)) from e
    finally:
        os.close(fd)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"is larger than {MAX_CONFIG_BYTES} bytes", file=str(path))
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError(f"is not UTF-8: byte 0x{data[e.start]:02x} cannot be decoded; save the file as UTF-8",
                          file=str(path), line=line) from e
    if not text.strip():
        raise ConfigError("is empty; see the README for a minimal config", file=str(path))
    return text


def _refuse_unless_regular(st: os.stat_result, path: Path) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise ConfigError("is a directory, not a config file", file=str(path))
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError("is not a regular file (a FIFO, socket or device); give the path of the "
                          "TOML file itself", file=str(path))
    if st.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"is {st.st_size} bytes; a config file is at most {MAX_CONFIG_BYTES} bytes",
                          file=str(path))


def load_config(path: Path | str) -> Config:
    """Read and validate the config file; raise ConfigError naming what is wrong."""
    path = Path(path)
    text = read_config_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise ConfigError(
            f"not valid TOML: {e}", file=str(path), line=int(m.group(1)) if m else None
        ) from e
    return _parse(Loader(path, text), data)


def _parse(ld: Loader, data: dict[str, Any]) -> Config:
    allowed_top = {"certmgr", "daemon", "issuer", "deploy", "notify", "mta"}
    for key in data:
        if key not in allowed_top:
            raise ld.error(f"unknown table (allowed: {', '.join(sorted(allowed_top))})", key, None)
    settings = _parse_settings(ld, data.get("certmgr", {}))
    issuers = _parse_providers(ld, data.get("issuer", {}), "issuer")
    deploys = _parse_providers(ld, data.get("deploy", {}), "deploy")
    notifies = {
        name: _notify_config(ld, p) for name, p in _parse_providers(ld, data.get("notify", {}), "notify").items()
    }
    raw_mtas = data.get("mta", [])
    if not isinstance(raw_mtas, list):
        raise ld.error("must be an array of tables: write each MTA as [[mta]]", "mta", None)
    mtas: list[MtaConfig] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_mtas):
        mta = _parse_mta(ld, raw, i + 1, issuers, deploys, notifies)
        if mta.hostname in seen:
            raise ld.error(
                f"duplicate hostname {mta.hostname} (also [[mta]] #{seen[mta.hostname]}); "
                "list every key type of one MTA in its `key` list instead",
                f"mta #{i + 1}",
                "hostname",
            )
        seen[mta.hostname] = i + 1
        mtas.append(mta)
    daemon = _parse_daemon(ld, data.get("daemon", {}), settings)
    primaries = _parse_primaries(ld, deploys, mtas)
    return Config(ld.path, settings, issuers, deploys, notifies, tuple(mtas), ld.text, daemon, primaries)


def _parse_primaries(ld: Loader, deploys: dict[str, ProviderConfig],
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
            raise ld.error(f"must be the hostname of an [[mta]] that lists deploy = [\"{name}\"] "
                           f"({', '.join(served) or 'none does'}), got {value!r}", p.table, "primary")
        out[name] = host
        options = {k: v for k, v in p.options.items() if k != "primary"}
        deploys[name] = ProviderConfig(p.kind, p.name, p.type, options, p.line)
    return out


def _parse_daemon(ld: Loader, raw: Any, settings: Settings) -> DaemonSettings:
    t = Table(ld, raw, "daemon")
    defaults = DaemonSettings()
    intervals: dict[str, int] = {}
    for key in ("renew_interval", "probe_interval", "remind_interval", "ari_interval"):
        value = t.get(key, int, getattr(defaults, key))
        # probing and ARI may be switched off (0): monitoring runs `certmgr check`, the CA has no ARI
        low = 0 if key in ("probe_interval", "ari_interval") else 1
        if not low <= value <= 7 * 86400:
            raise t.err(key, f"must be a number of seconds between {low} and 604800, got {value}")
        intervals[key] = value
    # [certmgr] metrics_listen is the older place of this setting and stays accepted
    listen = t.get("metrics_listen", str, settings.metrics_listen)
    if listen:
        _host_port(listen, 9420, lambda m: t.err("metrics_listen", m))
    t.finish()
    return DaemonSettings(**intervals, metrics_listen=listen)


def _parse_settings(ld: Loader, raw: Any) -> Settings:
    t = Table(ld, raw, "certmgr")
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
    resolver = _host_port(resolver_text, 53, lambda m: t.err("resolver", m)) if resolver_text else None
    t.finish()
    return Settings(state_dir, database, trust_path, concurrency, warning, critical, listen, resolver)


def _parse_providers(ld: Loader, raw: Any, kind: str) -> dict[str, ProviderConfig]:
    if not isinstance(raw, dict):
        raise ld.error(f"must be tables like [{kind}.NAME]", kind, None)
    out: dict[str, ProviderConfig] = {}
    for name, table in raw.items():
        where = f"{kind}.{name}"
        if not re.match(r"^[A-Za-z0-9_-]+$", name):
            raise ld.error("name may hold only letters, digits, '-' and '_'", where, None)
        if not isinstance(table, dict):
            raise ld.error(f"must be a table [{where}]", where, None)
        ptype = table.get("type")
        if not isinstance(ptype, str) or not ptype:
            raise ld.error("is required (the provider type, see `certmgr providers`)", where, "type")
        _refuse_inline_secrets(ld, table, where)
        options = {k: v for k, v in table.items() if k != "type"}
        out[name] = ProviderConfig(kind, name, ptype, options, find_line(ld.text, where, None))
    return out


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


def _notify_config(ld: Loader, p: ProviderConfig) -> NotifyConfig:
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
        p.kind, p.name, p.type, opts, p.line,
        reminders=tuple(sorted(set(reminders), reverse=True)), calendar=calendar, on_success=on_success,
    )


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
            if _WEAK_KEY.match(kt):
                raise err(f"{item!r} is weaker than certmgr allows (RSA-2048 / P-256 at least); use one of {allowed}")
            raise err(f"{item!r} is not a supported key type; use one of {allowed}")
        alg = KEY_TYPES[kt][0]
        if alg in algs:
            raise err(f"lists two {alg.upper()} keys; an MTA serves at most one RSA and one ECDSA certificate")
        algs.add(alg)
        out.append(kt)
    return tuple(out)


def _parse_mta(
    ld: Loader,
    raw: Any,
    index: int,
    issuers: Mapping[str, ProviderConfig],
    deploys: Mapping[str, ProviderConfig],
    notifies: Mapping[str, NotifyConfig],
) -> MtaConfig:
    t = Table(ld, raw, f"mta #{index}")
    try:
        hostname = normalize_hostname(t.get("hostname", str, required=True))
    except NameError_ as e:
        raise t.err("hostname", f"{e}") from e
    names: list[str] = []
    for n in t.str_list("names"):
        try:
            fq = normalize_hostname(n, allow_wildcard=True)
        except NameError_ as e:
            raise t.err("names", f"{e}") from e
        if fq != hostname and fq not in names:
            names.append(fq)
    key_types = parse_key_types(t.get("key", (str, list), "rsa-2048"), lambda m: t.err("key", m))
    issuer = t.get("issuer", str, required=True)
    _check_refs(t, "issuer", [issuer], issuers)
    deploy = t.str_list("deploy")
    _check_refs(t, "deploy", deploy, deploys)
    notify = t.str_list("notify")
    _check_refs(t, "notify", notify, notifies)
    smtp = t.get("smtp", str, f"{hostname}:25")
    smtp_host, smtp_port = _host_port(smtp, 25, lambda m: t.err("smtp", m))
    protocol = t.get("protocol", str)
    if protocol is not None and protocol not in PROTOCOLS:
        raise t.err("protocol", f"must be one of {', '.join(PROTOCOLS)} (the protocol spoken at `smtp`), "
                                f"got {protocol!r}")
    probe_protocol, probe_implicit = protocol_for(smtp_port, protocol)
    renew_before = t.get("renew_before", (int, float))
    if renew_before is not None and not 0 < renew_before <= 365:
        # no public CA issues for longer than 398 days; a longer lead time is a mistake
        raise t.err("renew_before", f"must be a number of days between 0 and 365, got {renew_before}")
    reuse_key = t.get("reuse_key", bool, False)
    dane = t.get("dane", bool, True)
    t.finish()
    return MtaConfig(
        hostname, tuple(names), key_types, issuer, tuple(deploy), smtp_host, smtp_port, probe_protocol,
        probe_implicit, tuple(notify), float(renew_before) if renew_before is not None else None, reuse_key, dane,
    )


def _check_refs(t: Table, key: str, refs: list[str], defined: Mapping[str, Any]) -> None:
    for ref in refs:
        if ref not in defined:
            known = ", ".join(defined) or "none"
            raise t.err(key, f"refers to [{key}.{ref}], which is not defined (defined: {known})")


def _host_port(value: str, default_port: int, err: Any) -> tuple[str, int]:
    if value.count(":") > 1 and not value.startswith("["):
        # a bare IPv6 address has no port: "::1" is the address ::1, not "::" port 1
        try:
            return str(ipaddress.IPv6Address(value)), default_port
        except ValueError:
            raise err(f"must be host, host:port or [IPv6]:port, got {value!r}") from None
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
