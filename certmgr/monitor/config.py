"""The ``[monitor]`` table: which mail logs to read, where TLS reports arrive,
when the report goes out and when to alert.

```toml
[monitor]
logs   = [{ type = "postfix", path = "/var/log/mail.log" }]   # type: postfix | exim
tlsrpt = { maildir = "/var/mail/tlsrpt" }
report = { notify = ["mailops"], every = "weekly" }           # daily | weekly | off
alerts = { tls_share = 0.9, min_sessions = 20, tlsrpt_failures = 1 }
```
Every problem is a ``ConfigError`` naming the table and the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from certmgr.errors import ConfigError
from certmgr.monitor.alerts import Thresholds

LOG_TYPES = ("postfix", "exim")
EVERY = ("daily", "weekly", "off")
TABLE = "monitor"


@dataclass(frozen=True)
class LogSource:
    type: str
    path: Path


@dataclass(frozen=True)
class MonitorConfig:
    logs: tuple[LogSource, ...] = ()
    tlsrpt_maildir: Path | None = None
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


def _logs(value: Any, file: str | None) -> tuple[LogSource, ...]:
    if not isinstance(value, list):
        raise _err(f"expected a list of tables, got {type(value).__name__}", "logs", file)
    out = []
    for i, item in enumerate(value):
        key = f"logs[{i}]"
        t = _table(item, key, file, {"type", "path", "journal"})
        if t.get("type") not in LOG_TYPES:
            raise _err(f"type must be one of {', '.join(LOG_TYPES)}, got {t.get('type')!r}", f"{key}.type", file)
        if "journal" in t:
            raise _err("journal sources are not supported yet; give the log file as path", f"{key}.journal", file)
        path = t.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise _err(f"path must be an absolute file name, got {path!r}", f"{key}.path", file)
        out.append(LogSource(t["type"], Path(path)))
    return tuple(out)


def parse_monitor(table: Any, *, file: str | None = None) -> MonitorConfig:
    t = _table(table, "", file, {"logs", "tlsrpt", "report", "alerts"})
    logs = _logs(t.get("logs", []), file)
    maildir = None
    if "tlsrpt" in t:
        r = _table(t["tlsrpt"], "tlsrpt", file, {"maildir", "listen"})
        if "listen" in r:
            raise _err("the HTTPS endpoint is not supported yet; use maildir", "tlsrpt.listen", file)
        if not isinstance(r.get("maildir"), str) or not r["maildir"].startswith("/"):
            raise _err(f"maildir must be an absolute directory, got {r.get('maildir')!r}", "tlsrpt.maildir", file)
        maildir = Path(r["maildir"])
    rep = _table(t.get("report", {}), "report", file, {"notify", "every"})
    notify = rep.get("notify", [])
    if not isinstance(notify, list) or not all(isinstance(n, str) and n for n in notify):
        raise _err(f"notify must be a list of notifier names, got {notify!r}", "report.notify", file)
    every = rep.get("every", "weekly")
    if every not in EVERY:
        raise _err(f"every must be one of {', '.join(EVERY)}, got {every!r}", "report.every", file)
    al = _table(t.get("alerts", {}), "alerts", file, {"tls_share", "min_sessions", "tlsrpt_failures"})
    share = al.get("tls_share", Thresholds.tls_share)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise _err(f"tls_share must be a number from 0 to 1, got {share!r}", "alerts.tls_share", file)
    ints = {}
    for key in ("min_sessions", "tlsrpt_failures"):
        v = al.get(key, getattr(Thresholds, key))
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise _err(f"{key} must be a whole number >= 0, got {v!r}", f"alerts.{key}", file)
        ints[key] = v
    return MonitorConfig(logs=logs, tlsrpt_maildir=maildir, report_notify=tuple(notify), report_every=every,
                         thresholds=Thresholds(tls_share=float(share), **ints))
