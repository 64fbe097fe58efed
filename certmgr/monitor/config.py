"""The ``[monitor]`` table: which mail logs to read, where TLS reports arrive,
when the report goes out and when to alert.

```toml
[monitor]
logs   = [{ type = "postfix", path = "/var/log/mail.log" }]   # type: postfix | exim
#        or { type = "postfix", journal = "postfix@-.service", directory = "/var/log/journal/remote" }
tlsrpt = { maildir = "/var/mail/tlsrpt" }   # and/or listen = "127.0.0.1:9421", cert = "/…", key = "/…"
report = { notify = ["mailops"], every = "weekly" }           # daily | weekly | off
alerts = { tls_share = 0.9, min_sessions = 20, tlsrpt_failures = 1 }
```
Every problem is a ``ConfigError`` naming the table and the key.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from certmgr.errors import ConfigError, raise_all
from certmgr.monitor.alerts import Thresholds

LOG_TYPES = ("postfix", "exim")
EVERY = ("daily", "weekly", "off")
TABLE = "monitor"
T = TypeVar("T")


@dataclass(frozen=True)
class LogSource:
    type: str
    path: Path | None = None  # a log file, or
    journal: str | None = None  # a systemd unit whose journal entries are read
    directory: Path | None = None  # journal files of this directory instead of the system journal

    @property
    def name(self) -> str:
        """What the source's position is stored and reported under."""
        if self.journal is not None:
            from certmgr.monitor.journal import journal_source

            return journal_source(self.journal, self.directory)
        return str(self.path)


@dataclass(frozen=True)
class MonitorConfig:
    logs: tuple[LogSource, ...] = ()
    tlsrpt_maildir: Path | None = None
    #: the RFC 8460 HTTPS endpoint the daemon serves: (host, port), certificate and key files
    tlsrpt_listen: tuple[str, int] | None = None
    tlsrpt_cert: Path | None = None
    tlsrpt_key: Path | None = None
    report_notify: tuple[str, ...] = ()
    report_every: str = "weekly"
    thresholds: Thresholds = field(default_factory=Thresholds)


def _err(message: str, key: str, file: str | None) -> ConfigError:
    return ConfigError(message, file=file, table=TABLE, key=key)


def _table(value: Any, key: str, file: str | None, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _err(f"expected a table, got {type(value).__name__}", key, file)
    unknown = set(value) - allowed
    if unknown:
        raise _err(f"unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(allowed))}", key, file)
    return value


class _Errors:
    """The errors of one ``[monitor]`` table: each check that fails is noted and reading goes on."""

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []

    def check(self, parse: Callable[[], T], default: T) -> T:
        try:
            return parse()
        except ConfigError as e:
            self.errors.append(e)
            return default


def _log(item: Any, key: str, file: str | None) -> LogSource:
    t = _table(item, key, file, {"type", "path", "journal", "directory"})
    if t.get("type") not in LOG_TYPES:
        raise _err(f"type must be one of {', '.join(LOG_TYPES)}, got {t.get('type')!r}", f"{key}.type", file)
    if "journal" in t:
        return _journal(t, key, file)
    if "directory" in t:
        raise _err("directory is where journal files are: give journal = \"<unit>\" too", f"{key}.directory", file)
    path = t.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise _err(f"path must be an absolute file name, got {path!r}", f"{key}.path", file)
    return LogSource(t["type"], Path(path))


def _logs(value: Any, file: str | None, errs: _Errors) -> tuple[LogSource, ...]:
    if not isinstance(value, list):
        errs.errors.append(_err(f"expected a list of tables, got {type(value).__name__}", "logs", file))
        return ()
    found = [errs.check(partial(_log, item, f"logs[{i}]", file), None) for i, item in enumerate(value)]
    return tuple(src for src in found if src is not None)


def _journal(t: dict[str, Any], key: str, file: str | None) -> LogSource:
    if "path" in t:
        raise _err("give either path (a log file) or journal (a systemd unit), not both", f"{key}.journal", file)
    unit = t["journal"]
    if not isinstance(unit, str) or not re.fullmatch(r"[A-Za-z0-9:_.@*?\\\[\]-]+", unit):
        raise _err(f"journal must be a systemd unit name (like postfix@-.service), got {unit!r}",
                   f"{key}.journal", file)
    if shutil.which("journalctl") is None:
        raise _err("journal sources are read with journalctl, which is not on PATH: install systemd's "
                   "journalctl or give the log file as path", f"{key}.journal", file)
    directory = t.get("directory")
    if directory is not None and (not isinstance(directory, str) or not directory.startswith("/")
                                  or not Path(directory).is_dir()):
        raise _err(f"directory must be an existing absolute directory of journal files, got {directory!r}",
                   f"{key}.directory", file)
    return LogSource(t["type"], journal=unit, directory=Path(directory) if directory else None)


def _listen(value: Any, file: str | None) -> tuple[str, int]:
    m = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[0-9A-Za-z.-]+):(\d{1,5})", value) if isinstance(value, str) else None
    if m is None or not 0 < int(m[2]) < 65536:
        raise _err(f"listen must be address:port (like 127.0.0.1:9421 or [::]:9421), got {value!r}",
                   "tlsrpt.listen", file)
    return m[1].strip("[]"), int(m[2])


def _abs_file(value: Any, key: str, file: str | None) -> Path:
    if not isinstance(value, str) or not value.startswith("/"):
        raise _err(f"the HTTPS endpoint needs {key.rpartition('.')[2]} = an absolute PEM file name, got {value!r}",
                   key, file)
    return Path(value)


def _tlsrpt(value: Any, file: str | None, errs: _Errors) -> dict[str, Any]:
    r = _table(value, "tlsrpt", file, {"maildir", "listen", "cert", "key"})
    if "maildir" not in r and "listen" not in r:
        raise _err("give maildir, listen (with cert and key), or both", "tlsrpt", file)
    out: dict[str, Any] = {}
    if "maildir" in r:
        if isinstance(r["maildir"], str) and r["maildir"].startswith("/"):
            out["tlsrpt_maildir"] = Path(r["maildir"])
        else:
            errs.errors.append(_err(f"maildir must be an absolute directory, got {r['maildir']!r}",
                                    "tlsrpt.maildir", file))
    if "listen" in r:
        out["tlsrpt_listen"] = errs.check(lambda: _listen(r["listen"], file), None)
        out["tlsrpt_cert"] = errs.check(lambda: _abs_file(r.get("cert"), "tlsrpt.cert", file), None)
        out["tlsrpt_key"] = errs.check(lambda: _abs_file(r.get("key"), "tlsrpt.key", file), None)
    elif "cert" in r or "key" in r:
        errs.errors.append(_err("cert and key are for the HTTPS endpoint: give listen too", "tlsrpt.listen", file))
    return out


def _notify(rep: dict[str, Any], file: str | None) -> tuple[str, ...]:
    notify = rep.get("notify", [])
    if not isinstance(notify, list) or not all(isinstance(n, str) and n for n in notify):
        raise _err(f"notify must be a list of notifier names, got {notify!r}", "report.notify", file)
    return tuple(notify)


def _every(rep: dict[str, Any], file: str | None) -> str:
    every = rep.get("every", "weekly")
    if every not in EVERY:
        raise _err(f"every must be one of {', '.join(EVERY)}, got {every!r}", "report.every", file)
    return str(every)


def _share(al: dict[str, Any], file: str | None) -> float:
    share = al.get("tls_share", Thresholds.tls_share)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise _err(f"tls_share must be a number from 0 to 1, got {share!r}", "alerts.tls_share", file)
    return float(share)


def _count(al: dict[str, Any], key: str, file: str | None) -> int:
    v = al.get(key, getattr(Thresholds, key))
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise _err(f"{key} must be a whole number >= 0, got {v!r}", f"alerts.{key}", file)
    return v


def parse_monitor(table: Any, *, file: str | None = None) -> MonitorConfig:
    """The ``[monitor]`` table; every mistake in it at once (``ConfigErrors`` when there are
    several, each naming its key)."""
    errs = _Errors()
    allowed = {"logs", "tlsrpt", "report", "alerts"}
    if not isinstance(table, dict):
        raise _err(f"expected a table, got {type(table).__name__}", "", file)
    errs.check(lambda: _table(table, "", file, allowed), None)
    t = {k: v for k, v in table.items() if k in allowed}
    logs = _logs(t.get("logs", []), file, errs)
    empty: dict[str, Any] = {}
    no_names: tuple[str, ...] = ()
    tlsrpt = errs.check(lambda: _tlsrpt(t["tlsrpt"], file, errs), empty) if "tlsrpt" in t else empty
    rep = errs.check(lambda: _table(t.get("report", {}), "report", file, {"notify", "every"}), empty)
    notify = errs.check(lambda: _notify(rep, file), no_names)
    every = errs.check(lambda: _every(rep, file), "weekly")
    al = errs.check(lambda: _table(t.get("alerts", {}), "alerts", file,
                                   {"tls_share", "min_sessions", "tlsrpt_failures"}), empty)
    share = errs.check(lambda: _share(al, file), Thresholds.tls_share)
    ints = {key: errs.check(partial(_count, al, key, file), getattr(Thresholds, key))
            for key in ("min_sessions", "tlsrpt_failures")}
    raise_all(errs.errors)
    return MonitorConfig(logs=logs, report_notify=notify, report_every=every,
                         thresholds=Thresholds(tls_share=share, **ints), **tlsrpt)
