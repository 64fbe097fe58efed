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


def _logs(value: Any, file: str | None) -> tuple[LogSource, ...]:
    if not isinstance(value, list):
        raise _err(f"expected a list of tables, got {type(value).__name__}", "logs", file)
    out = []
    for i, item in enumerate(value):
        key = f"logs[{i}]"
        t = _table(item, key, file, {"type", "path", "journal", "directory"})
        if t.get("type") not in LOG_TYPES:
            raise _err(f"type must be one of {', '.join(LOG_TYPES)}, got {t.get('type')!r}", f"{key}.type", file)
        if "journal" in t:
            out.append(_journal(t, key, file))
            continue
        if "directory" in t:
            raise _err("directory is where journal files are: give journal = \"<unit>\" too", f"{key}.directory",
                       file)
        path = t.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise _err(f"path must be an absolute file name, got {path!r}", f"{key}.path", file)
        out.append(LogSource(t["type"], Path(path)))
    return tuple(out)


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


def parse_monitor(table: Any, *, file: str | None = None) -> MonitorConfig:
    t = _table(table, "", file, {"logs", "tlsrpt", "report", "alerts"})
    logs = _logs(t.get("logs", []), file)
    maildir: Path | None = None
    listen: tuple[str, int] | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    if "tlsrpt" in t:
        r = _table(t["tlsrpt"], "tlsrpt", file, {"maildir", "listen", "cert", "key"})
        if "maildir" not in r and "listen" not in r:
            raise _err("give maildir, listen (with cert and key), or both", "tlsrpt", file)
        if "maildir" in r:
            if not isinstance(r["maildir"], str) or not r["maildir"].startswith("/"):
                raise _err(f"maildir must be an absolute directory, got {r['maildir']!r}", "tlsrpt.maildir", file)
            maildir = Path(r["maildir"])
        if "listen" in r:
            listen = _listen(r["listen"], file)
            cert_file = _abs_file(r.get("cert"), "tlsrpt.cert", file)
            key_file = _abs_file(r.get("key"), "tlsrpt.key", file)
        elif "cert" in r or "key" in r:
            raise _err("cert and key are for the HTTPS endpoint: give listen too", "tlsrpt.listen", file)
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
    return MonitorConfig(logs=logs, tlsrpt_maildir=maildir, tlsrpt_listen=listen, tlsrpt_cert=cert_file,
                         tlsrpt_key=key_file, report_notify=tuple(notify), report_every=every,
                         thresholds=Thresholds(tls_share=float(share), **ints))
