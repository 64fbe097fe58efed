"""Read what is new in the systemd journal of a mail service, exactly once.

``journalctl -o json --unit UNIT [--directory DIR] --after-cursor CURSOR``
streams the entries after the last one read; each entry is put back into the
syslog line the parsers read (``TIME HOST IDENT[PID]: MESSAGE``), so a
session counts the same whether it came from a file or from the journal.

The stored read position is the journal cursor of the last entry read, with
the parser's open sessions: the counts of a run and the new cursor are
committed in one transaction (as for files), so a crash or a restart neither
doubles nor skips an entry.  A cursor that names an entry the journal no longer
holds (vacuumed) makes ``journalctl`` start at the next entry it still has.
``directory`` reads journal files of another place (``systemd-journal-remote``'s
output, a container's journal) instead of the system journal.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from certmgr.errors import CertmgrError
from certmgr.monitor.collector import PARSERS, CollectResult, LogParser, Tally
from certmgr.monitor.storage import MonitorStorage

#: how long ``journalctl`` may take to exit once its output has ended
TIMEOUT = 600.0


class JournalError(CertmgrError):
    """``journalctl`` failed: the journal could not be read (nothing was counted)."""


def journal_source(unit: str, directory: Path | None) -> str:
    """The name a journal source's position is stored and shown under."""
    return f"journal:{unit}" if directory is None else f"journal:{directory}:{unit}"


def journal_command(unit: str, *, directory: Path | None, cursor: str | None) -> list[str]:
    cmd = ["journalctl", "--output=json", "--no-pager", "--quiet", f"--unit={unit}"]
    if directory is not None:
        cmd.append(f"--directory={directory}")
    if cursor:
        cmd.append(f"--after-cursor={cursor}")
    return cmd


def _text(value: Any) -> str:
    """A journal field: a string, or (not valid UTF-8) a list of byte values."""
    if isinstance(value, list):
        return bytes(v for v in value if isinstance(v, int) and 0 <= v < 256).decode("utf-8", "replace")
    return str(value)


def syslog_line(entry: dict[str, Any], log_type: str) -> str | None:
    """The log line ``entry`` was as syslog wrote it, in the form the ``log_type`` parser reads;
    None for an entry without a message or time."""
    message, stamp = entry.get("MESSAGE"), str(entry.get("__REALTIME_TIMESTAMP"))
    if message is None or not stamp.isdigit():
        return None
    when = datetime.fromtimestamp(int(stamp) // 1_000_000, UTC)
    text = _text(message).replace("\n", " ")
    if log_type == "exim":  # Exim's own log format: "2026-11-30 04:09:53 1xXsi9-... <= ..."
        return f"{when:%Y-%m-%d %H:%M:%S} {text}"
    ident = _text(entry.get("SYSLOG_IDENTIFIER", "-")).replace(" ", "_") or "-"
    pid = str(entry.get("SYSLOG_PID") or entry.get("_PID") or "0")
    host = _text(entry.get("_HOSTNAME", "-")).replace(" ", "_") or "-"
    return f"{when.isoformat()} {host} {ident}[{pid if pid.isdigit() else '0'}]: {text}"


def _read(proc: subprocess.Popen[bytes], log_type: str, parser: LogParser, tally: Tally,
          result: CollectResult) -> str | None:
    """Feed the entries ``proc`` streams to ``parser``; the cursor of the last one (None: none)."""
    assert proc.stdout is not None
    cursor = None
    for raw in proc.stdout:
        try:
            entry = json.loads(raw)
        except ValueError:
            result.unparsed += 1
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("__CURSOR"), str):
            result.unparsed += 1
            continue
        cursor = entry["__CURSOR"]
        result.lines += 1
        line = syslog_line(entry, log_type)
        if line is None:
            continue
        s = parser.feed(line)
        if s is not None:
            tally.add(s)
    return cursor


def collect_journal(unit: str, storage: MonitorStorage, *, log_type: str = "postfix",
                    directory: Path | None = None, source: str | None = None) -> CollectResult:
    """Read the entries of ``unit`` after the stored cursor, add their sessions to ``storage``
    and store the cursor of the last one, in one commit."""
    source = source or journal_source(unit, directory)
    result = CollectResult(source)
    pos = storage.load_position(source)
    parser = PARSERS[log_type](datetime.now(UTC).year)
    if pos is not None:
        parser.restore(pos.get("parser", {}))
    cursor = pos.get("cursor") if pos else None
    tally = Tally()
    # stderr to a file: a pipe left unread while stdout streams could fill and stall journalctl
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(journal_command(unit, directory=directory, cursor=cursor),
                                    stdout=subprocess.PIPE, stderr=errors)
        except OSError as e:
            raise JournalError(f"cannot run journalctl: {e.strerror or e}") from e
        with proc:
            cursor = _read(proc, log_type, parser, tally, result) or cursor
            try:
                proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired as e:
                proc.kill()
                raise JournalError(f"journalctl for {unit} did not exit within {TIMEOUT:.0f} s; nothing counted") from e
        errors.seek(0)
        err = errors.read(4096)
    if proc.returncode != 0:
        reason = err.decode("utf-8", "replace").strip() or f"exit status {proc.returncode}"
        raise JournalError(f"journalctl for {unit} failed ({reason}); nothing counted")
    result.sessions = tally.sessions
    result.files.append(source)
    result.unparsed += parser.unparsed
    last_time = tally.last.isoformat() if tally.last else pos.get("last_time") if pos else None
    new_pos = {"cursor": cursor, "parser": parser.state(), "last_time": last_time}
    storage.commit(source, new_pos, tally.keyed(), result.unparsed, tally.plain_peers())
    return result
