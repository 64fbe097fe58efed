"""Load ``certmgr.toml`` into typed, validated objects.

Only the core's own keys are checked here; each provider validates its own
table when it is built (:mod:`certmgr.registry`).  Every error names the file,
the table, the key and (when it can be found) the line, and says what is allowed.
"""

from __future__ import annotations

import glob
import ipaddress
import os
import re
import stat
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

# tomli, compiled, reads a large config twice as fast as tomllib (the same parser in pure Python)
from tomli import TOMLDecodeError
from tomli import loads as toml_loads

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
from certmgr.config.toml import Loader, Table
from certmgr.errors import ConfigError, raise_all
from certmgr.interfaces import PROTOCOLS, protocol_for
from certmgr.monitor.config import MonitorConfig, parse_monitor
from certmgr.options import did_you_mean, unknown_key
from certmgr.pki.keytypes import KEY_TYPES, is_weak_key_type_name
from certmgr.pki.names import NameError_, normalize_hostname

if TYPE_CHECKING:
    from certmgr.dns.settings import DaneSettings, MtaStsSettings

T = TypeVar("T")
#: keys whose values are secrets: they must come from <key>_file or <key>_env
_SECRET_KEY = re.compile(r"(^|_)(password|passwd|secret|hmac|hmac_key|token|tsig_key|api_key)$")

def config_path(cli_value: str | None) -> Path:
    return Path(cli_value or os.environ.get("CERTMGR_CONFIG") or DEFAULT_CONFIG)


#: a config larger than this is not a config someone wrote (and is not read whole into memory)
MAX_CONFIG_BYTES = 1 << 20


def read_config_text(path: Path | str, *, allow_empty: bool = False) -> str:
    """The config file's text: a regular UTF-8 file (a leading BOM is accepted and dropped,
    as editors on some systems write one), not empty unless ``allow_empty`` (an included file).
    Anything else is refused at once, naming the file (and the line of a byte that is not
    UTF-8); a FIFO or device is never read."""
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
        st = os.fstat(fd)
        _refuse_unless_regular(st, path)
        data = _read_at_most(fd, st.st_size, MAX_CONFIG_BYTES + 1)
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
    if not text.strip() and not allow_empty:
        raise ConfigError("is empty; see the README for a minimal config", file=str(path))
    return text


def _read_at_most(fd: int, size: int, limit: int) -> bytes:
    """Up to ``limit`` bytes of ``fd``, asking for the ``size`` fstat gave (plus one, to see the
    end): a buffer of ``limit`` for each of 10,000 small included files costs more than the reading."""
    chunks: list[bytes] = []
    total = 0
    want = min(size, limit - 1) + 1
    while total < limit:
        chunk = os.read(fd, want)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        want = limit - total
    return b"".join(chunks)


def _refuse_unless_regular(st: os.stat_result, path: Path | str) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise ConfigError("is a directory, not a config file", file=str(path))
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError("is not a regular file (a FIFO, socket or device); give the path of the "
                          "TOML file itself", file=str(path))
    if st.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"is {st.st_size} bytes; a config file is at most {MAX_CONFIG_BYTES} bytes",
                          file=str(path))


#: the keys of each core table (the provider tables are checked by their providers)
CERTMGR_KEYS = frozenset({"state_dir", "database", "trust", "concurrency", "warning_days", "critical_days",
                          "metrics_listen", "resolver", "include"})
DAEMON_KEYS = frozenset({"renew_interval", "probe_interval", "remind_interval", "ari_interval", "collect_interval",
                         "metrics_listen"})
MTA_KEYS = frozenset({"hostname", "names", "key", "issuer", "deploy", "notify", "smtp", "protocol", "renew_before",
                      "reuse_key", "dane"})
#: the [[mta]] keys [defaults] may set; the others name one MTA
DEFAULT_KEYS = MTA_KEYS - {"hostname", "names", "smtp"}
PROVIDER_KINDS = ("issuer", "deploy", "notify", "dns")
#: the tables of the main file; an included file holds only [[mta]] and provider tables
MAIN_TABLES = frozenset({"certmgr", "daemon", "defaults", *PROVIDER_KINDS, "mta", "mta_sts", "monitor"})
INCLUDED_TABLES = frozenset({*PROVIDER_KINDS, "mta"})


def load_config(path: Path | str) -> Config:
    """Read and validate the config file and the files it includes.

    Raise a ConfigError naming what is wrong (a :class:`ConfigErrors` with every error
    found, sorted by file and line, when there are several)."""
    path = Path(path)
    errors: list[ConfigError] = []
    main = Loader(path, read_config_text(path), errors)
    data = _toml(main)
    _check_tables(main, data, MAIN_TABLES)
    sources = [(main, data)]
    for included in _include_files(main, data.get("certmgr")):
        try:
            ld = Loader(included, read_config_text(included, allow_empty=True), errors)
            sources.append((ld, _toml(ld)))
        except ConfigError as e:
            errors.append(e)
            continue
        _check_tables(ld, sources[-1][1], INCLUDED_TABLES)
    config = _parse(sources)
    raise_all(errors, [ld.file for ld, _ in sources])
    assert config is not None
    return config


def _toml(ld: Loader) -> dict[str, Any]:
    try:
        return toml_loads(ld.text)
    except TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise ConfigError(f"not valid TOML: {e}", file=ld.file, line=int(m.group(1)) if m else None) from e


def _check_tables(ld: Loader, data: dict[str, Any], allowed: frozenset[str]) -> None:
    for key in data:
        if key in allowed:
            continue
        if key in MAIN_TABLES:
            ld.report(ld.error("is allowed only in the main config file; an included file holds [[mta]], "
                               "[issuer.*], [deploy.*], [notify.*] and [dns.*] tables", key, None))
        else:
            ld.report(ld.error(unknown_key(key, allowed, "table"), key, None))


def _include_files(ld: Loader, raw: Any) -> list[str]:
    """The files ``include`` names, in its order, the matches of each pattern sorted; relative
    paths are taken from the main file's directory.  A pattern matching nothing is fine (an
    empty conf.d); a file named without a pattern must exist."""
    if not isinstance(raw, dict) or "include" not in raw:
        return []
    value = raw["include"]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        ld.report(ld.error(f'must be a list of file names or glob patterns, e.g. ["conf.d/*.toml"]; got {value!r}',
                           "certmgr", "include"))
        return []
    main = os.path.normpath(ld.path.absolute())
    seen: set[str] = set()
    out: list[str] = []
    for pattern in value:
        full = os.path.normpath(ld.path.parent.absolute() / pattern)
        if _GLOB.search(pattern):
            matches = sorted(glob.glob(full))
        elif os.path.lexists(full):
            matches = [full]
        else:
            ld.report(ld.error(f"{full} not found (a pattern matching no file is fine, a file named "
                               "without one must exist)", "certmgr", "include"))
            continue
        for match in matches:
            if match == main:
                ld.report(ld.error(f"{pattern!r} matches the main config file itself; include only the "
                                   "files of [[mta]] and provider tables", "certmgr", "include"))
            elif match not in seen:
                seen.add(match)
                out.append(match)
    return out


_GLOB = re.compile(r"[*?[]")


def _parse(sources: list[tuple[Loader, dict[str, Any]]]) -> Config | None:
    """Every table of every file, each error reported; None when any was found."""
    main, data = sources[0]
    settings = _guard(main, lambda: _parse_settings(main, data.get("certmgr", {})))
    loaders = {ld.file: ld for ld, _ in sources}
    providers: dict[str, dict[str, ProviderConfig]] = {kind: {} for kind in PROVIDER_KINDS}
    #: names defined with an error: an [[mta]] naming one is not told it is undefined
    broken: set[tuple[str, str]] = set()
    for ld, d in sources:
        for kind in PROVIDER_KINDS:
            if kind in d:
                _parse_providers(ld, d[kind], kind, providers[kind], broken)
    issuers, deploys = providers["issuer"], providers["deploy"]
    notifies: dict[str, NotifyConfig] = {}
    for name, p in providers["notify"].items():
        n = _guard(loaders[p.file], partial(_notify_config, loaders[p.file], p))
        if n is None:
            broken.add(("notify", name))
        else:
            notifies[name] = n
    refs: dict[str, set[str]] = {
        kind: set(providers[kind]) | {name for k, name in broken if k == kind} for kind in PROVIDER_KINDS}
    defaults = _parse_defaults(main, data["defaults"], refs) if "defaults" in data else None
    mtas: list[MtaConfig] = []
    seen: dict[str, tuple[Loader, int]] = {}
    for ld, d in sources:
        raw_mtas = d.get("mta", [])
        if not isinstance(raw_mtas, list):
            ld.report(ld.error("must be an array of tables: write each MTA as [[mta]]", "mta", None))
            continue
        for i, raw in enumerate(raw_mtas):
            mta = _guard(ld, partial(_parse_mta, ld, raw, i + 1, refs, defaults))
            if mta is None:
                continue
            if mta.hostname in seen:
                first, index = seen[mta.hostname]
                ld.report(ld.error(
                    f"duplicate hostname {mta.hostname} (also the [[mta]] at {first.file}:"
                    f"{first.line(f'mta #{index}', 'hostname')}); list every key type of one MTA in its `key` "
                    "list instead",
                    f"mta #{i + 1}", "hostname"))
                continue
            seen[mta.hostname] = (ld, i + 1)
            mtas.append(mta)
    listen = settings.metrics_listen if settings else Settings.metrics_listen
    daemon = _guard(main, lambda: _parse_daemon(main, data.get("daemon", {}), listen))
    primaries = _parse_primaries(loaders, deploys, mtas)
    mta_sts = _parse_mta_sts(main, data["mta_sts"], refs) if "mta_sts" in data else {}
    monitor = _parse_monitor(main, data["monitor"], refs["notify"]) if "monitor" in data else None
    if main.errors or settings is None or daemon is None:
        return None
    if monitor is None:
        daemon = replace(daemon, collect_interval=0)  # nothing to collect
    texts = {ld.file: ld.text for ld, _ in sources}
    return Config(main.path, settings, issuers, deploys, notifies, tuple(mtas), main.text, daemon, primaries,
                  providers["dns"], mta_sts, texts, monitor)


def _parse_monitor(ld: Loader, raw: Any, notifies: Collection[str]) -> MonitorConfig | None:
    """The ``[monitor]`` table, its errors reported at the line of the key (``logs[0].path`` → ``logs``);
    None when it has one."""
    try:
        monitor = parse_monitor(raw, file=ld.file)
    except ConfigError as e:
        key = e.key or None
        line = ld.line("monitor", re.sub(r"\[\d+\]", "", key).partition(".")[0] if key else None)
        ld.report(ConfigError(e.message, file=ld.file, table="monitor", key=key, line=line))
        return None
    missing = [name for name in monitor.report_notify if name not in notifies]
    known = ", ".join(sorted(notifies)) or "none"
    for name in missing:
        ld.report(ld.error(f"{name!r} is not a [notify.*] table{did_you_mean(name, notifies)} (configured: {known})",
                           "monitor", "report.notify"))
    return None if missing else monitor


def _parse_mta_sts(ld: Loader, raw: Any, refs: Mapping[str, Collection[str]]) -> dict[str, MtaStsSettings]:
    """``[mta_sts."example.com"]`` tables, one per domain (checked by :mod:`certmgr.dns.settings`);
    each wrong table is reported."""
    if not isinstance(raw, dict):
        ld.report(ld.error('must be tables like [mta_sts."example.com"]', "mta_sts", None))
        return {}
    from certmgr.dns.settings import parse_mta_sts  # cryptography and dnspython: only when configured

    out: dict[str, MtaStsSettings] = {}
    for name, table in raw.items():
        try:
            domain = normalize_hostname(name)
        except NameError_ as e:
            ld.report(ld.error(f"is not a domain name: {e}", f'mta_sts."{name}"', None))
            continue
        try:
            out[domain] = parse_mta_sts(domain, table, dns_tables=refs["dns"], deploy_targets=refs["deploy"],
                                        issuers=refs["issuer"])
        except ConfigError as e:
            ld.report(ld.error(e.message, e.table, e.key))
    return out




def _guard(ld: Loader, parse: Callable[[], T]) -> T | None:
    """``parse()``, or None with its error reported: the next table is read all the same."""
    try:
        return parse()
    except ConfigError as e:
        ld.report(e)
        return None


def _parse_primaries(loaders: Mapping[str, Loader], deploys: dict[str, ProviderConfig],
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


def _parse_daemon(ld: Loader, raw: Any, default_listen: str) -> DaemonSettings:
    t = Table(ld, raw, "daemon", allowed=DAEMON_KEYS)
    defaults = DaemonSettings()
    intervals: dict[str, int] = {}
    for key in ("renew_interval", "probe_interval", "remind_interval", "ari_interval", "collect_interval"):
        value = t.get(key, int, getattr(defaults, key))
        # probing, ARI and collecting may be switched off (0): monitoring runs `certmgr check`, the CA
        # has no ARI, cron runs `certmgr collect`
        low = 0 if key in ("probe_interval", "ari_interval", "collect_interval") else 1
        if not low <= value <= 7 * 86400:
            raise t.err(key, f"must be a number of seconds between {low} and 604800, got {value}")
        intervals[key] = value
    # [certmgr] metrics_listen is the older place of this setting and stays accepted
    listen = t.get("metrics_listen", str, default_listen)
    if listen:
        _host_port(listen, 9420, lambda m: t.err("metrics_listen", m))
    t.finish()
    return DaemonSettings(**intervals, metrics_listen=listen)


def _parse_settings(ld: Loader, raw: Any) -> Settings:
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
    resolver = _host_port(resolver_text, 53, lambda m: t.err("resolver", m)) if resolver_text else None
    t.finish()
    return Settings(state_dir, database, trust_path, concurrency, warning, critical, listen, resolver)


def _parse_providers(ld: Loader, raw: Any, kind: str, out: dict[str, ProviderConfig],
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
        p.kind, p.name, p.type, opts, p.line, p.file,
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
class _Defaults:
    table: Table
    #: the values read without error, as an [[mta]] holds them
    values: Mapping[str, Any]


def _parse_defaults(ld: Loader, raw: Any, refs: Mapping[str, Collection[str]]) -> _Defaults | None:
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
    return _Defaults(t, values)


def _key_types(t: Table, refs: Mapping[str, Collection[str]]) -> tuple[str, ...]:
    return parse_key_types(t.get("key", (str, list), "rsa-2048"), lambda m: t.err("key", m))


def _issuer(t: Table, refs: Mapping[str, Collection[str]]) -> str:
    issuer: str = t.get("issuer", str, required=True)
    _check_refs(t, "issuer", [issuer], refs["issuer"])
    return issuer


def _ref_list(key: str) -> Callable[[Table, Mapping[str, Collection[str]]], tuple[str, ...]]:
    def parse(t: Table, refs: Mapping[str, Collection[str]]) -> tuple[str, ...]:
        values = t.str_list(key)
        _check_refs(t, key, values, refs[key])
        return tuple(values)
    return parse


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
        raise t.err("renew_before", f"must be a number of days between 0 and 365, got {renew_before}")
    return float(renew_before) if renew_before is not None else None


#: how each key [defaults] may set is read, the same in [defaults] and in [[mta]]
_MTA_FIELDS: dict[str, Callable[[Table, Mapping[str, Collection[str]]], Any]] = {
    "key": _key_types,
    "issuer": _issuer,
    "deploy": _ref_list("deploy"),
    "notify": _ref_list("notify"),
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


def _parse_mta(ld: Loader, raw: Any, index: int, refs: Mapping[str, Collection[str]],
               defaults: _Defaults | None) -> MtaConfig | None:
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
        smtp_host, smtp_port = t.check(lambda: _host_port(t.get("smtp", str), 25, lambda m: t.err("smtp", m)),
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


def _check_refs(t: Table, key: str, refs: list[str], defined: Collection[str]) -> None:
    for ref in refs:
        if ref not in defined:
            known = ", ".join(sorted(defined)) or "none"
            raise t.err(key, f"refers to [{key}.{ref}], which is not defined{did_you_mean(ref, defined)} "
                             f"(defined: {known})")



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
