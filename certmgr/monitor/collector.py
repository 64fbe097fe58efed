"""Read what is new in a mail log (Postfix or Exim), exactly once, across rotations and restarts.

The stored read position of a log is the file's identity (device, inode), the
byte offset of the first unread line and the SHA-256 of the last line read.
On each run the collector finds the file that holds that position:

- the log itself, when the last line read is still where it was (same inode,
  the line ending at the offset hashes the same): read on from the offset;
- otherwise a rotated sibling (``maillog.1``, ``maillog-20261130``,
  ``maillog.20261130-040000.gz`` …) whose bytes before the offset hash the same:
  *rename* rotation (same inode, new name), *copytruncate* (a copy, the log
  itself truncated) and ``postfix logrotate`` (renamed and gzipped at once —
  the rest is read from inside the ``.gz``).  The collector reads the rest of
  that file, any newer rotated files, then the log from its start.

Only complete lines are read from the live log (a line still being written
waits for the next run).  The counts of a run and the new position, with the
parser's open sessions, are committed in one transaction, so a crash or a
restart neither doubles nor skips a line.  If no file holds the position (the
log was replaced by other means) the log is read from its start and the result
says so.  Lines a writer appends to a rotated file after the collector moved
past it are not seen: rotate with a reload (``postfix logrotate`` does).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

from certmgr.monitor.exim_log import EximLogParser
from certmgr.monitor.postfix_log import PostfixLogParser, Session
from certmgr.monitor.storage import MonitorStorage, PeerKey, SessionKey, hour_of


@dataclass
class CollectResult:
    source: str
    lines: int = 0
    sessions: int = 0
    unparsed: int = 0
    files: list[str] = field(default_factory=list)  # the files read, in order
    position_lost: bool = False  # the stored position was found nowhere: read from the start


def _open(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.GzipFile(path, "rb")  # type: ignore[return-value]  # a binary file, as IO[bytes] wants
    return open(path, "rb")


def _holds(path: Path, pos: dict[str, Any]) -> bool:
    """Does ``path`` have the last line read ending at the stored offset?"""
    offset, tail = int(pos["offset"]), int(pos["tail_len"])
    if offset == 0:
        return False
    try:
        with _open(path) as f:
            f.seek(offset - tail)
            got = f.read(tail)
    except (OSError, EOFError, gzip.BadGzipFile):
        return False
    return hashlib.sha256(got).hexdigest() == str(pos["tail_sha256"])


def rotated_siblings(log: Path) -> list[Path]:
    """Rotated copies of ``log`` in its directory, oldest first (by mtime)."""
    prefix = log.name
    found = [p for p in log.parent.iterdir()
             if p.name != prefix and p.name.startswith(prefix) and p.name[len(prefix)] in ".-_" and p.is_file()]
    return sorted(found, key=lambda p: p.stat().st_mtime_ns)


def _plan(log: Path, pos: dict[str, Any] | None) -> tuple[list[tuple[Path, int]], bool]:
    """The files to read with their start offsets, and whether the position was lost."""
    if pos is None:
        return [(log, 0)], False
    siblings = rotated_siblings(log)
    if pos["offset"] == 0:
        # nothing was read from the log (an inode may be reused, so identity says little):
        # whatever was rotated since the last run is new
        mark = int(pos.get("mtime_ns", 0))
        return [*((s, 0) for s in siblings if s.stat().st_mtime_ns > mark), (log, 0)], False
    st = log.stat()
    if (st.st_dev, st.st_ino) == (pos["dev"], pos["ino"]) and _holds(log, pos):
        return [(log, int(pos["offset"]))], False
    # the newest rotated file first: the position is usually in the last rotation
    for i in range(len(siblings) - 1, -1, -1):
        if _holds(siblings[i], pos):
            return [(siblings[i], int(pos["offset"])), *((s, 0) for s in siblings[i + 1:]), (log, 0)], False
    return [(log, 0)], True


#: bytes read at a time; lines are decoded and handed to the parser a block at a time
BLOCK = 1 << 20


def _blocks(path: Path, start: int, *, live: bool) -> Iterator[tuple[list[str], bytes, int]]:
    """The lines from ``start`` a block at a time, without their newlines: (lines, the last
    line's bytes, the offset after it).  From the live log only complete lines; a rotated
    file to its end."""
    with _open(path) as f:
        f.seek(start)
        offset, rest = start, b""
        while data := f.read(BLOCK):
            data = rest + data
            cut = data.rfind(b"\n") + 1
            block, rest = data[:cut], data[cut:]
            if block:
                offset += cut
                # split at b"\n" only (str.splitlines would also split at \r, \x1c, U+2028 ...)
                yield block.decode("utf-8", "replace").split("\n")[:-1], block[block.rfind(b"\n", 0, -1) + 1:], offset
        if rest and not live:
            yield [rest.decode("utf-8", "replace")], rest, offset + len(rest)


class Tally:
    """The sessions of one run, counted per hour, direction, domain, level and protocol."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[int, str, str, str, str]] = Counter()  # (epoch hour, direction, ...)
        self.plain: Counter[tuple[int, str, str, str, str]] = Counter()  # (epoch hour, direction, domain, peer)
        self.sessions = 0
        self.last: datetime | None = None  # the time of the last session

    def add(self, s: Session) -> None:
        hour = int(s.when.timestamp()) // 3600
        self.counts[(hour, s.direction, s.domain, s.level, s.protocol)] += 1
        if not s.tls:
            self.plain[(hour, s.direction, s.domain, s.host, s.address)] += 1
        self.sessions += 1
        self.last = s.when

    def plain_peers(self) -> Counter[PeerKey]:
        return Counter({PeerKey(_hour(h), *rest): n for (h, *rest), n in self.plain.items()})

    def keyed(self) -> Counter[SessionKey]:
        return Counter({SessionKey(_hour(h), *rest): n for (h, *rest), n in self.counts.items()})


@functools.lru_cache(maxsize=4096)
def _hour(epoch_hour: int) -> str:
    return hour_of(datetime.fromtimestamp(epoch_hour * 3600, UTC))


class LogParser(Protocol):
    year: int
    unparsed: int

    def feed(self, line: str) -> Session | None: ...
    def state(self) -> dict[str, Any]: ...
    def restore(self, state: dict[str, Any]) -> None: ...


PARSERS: dict[str, Callable[[int], LogParser]] = {"postfix": PostfixLogParser, "exim": EximLogParser}


def collect_log(log: Path, storage: MonitorStorage, *, log_type: str = "postfix",
                source: str | None = None) -> CollectResult:
    """Read what is new in the mail log ``log`` (``log_type``: a key of ``PARSERS``),
    add it to ``storage``, move the position."""
    source = source or str(log)
    result = CollectResult(source)
    pos = storage.load_position(source)
    plan, result.position_lost = _plan(log, pos)
    parser = PARSERS[log_type](datetime.now(UTC).year)
    if pos is not None and not result.position_lost:
        parser.restore(pos.get("parser", {}))
    tally = Tally()
    offset, tail = 0, b""
    feed, add = parser.feed, tally.add
    for path, start in plan:
        live = path == log
        parser.year = datetime.fromtimestamp(path.stat().st_mtime, UTC).year
        result.files.append(path.name)
        offset, tail = start, b""
        for lines, tail, offset in _blocks(path, start, live=live):  # noqa: B007 - the position kept
            result.lines += len(lines)
            for line in lines:
                session = feed(line)
                if session is not None:
                    add(session)
    result.sessions = tally.sessions
    last_time = tally.last.isoformat() if tally.last else pos.get("last_time") if pos else None
    st = log.stat()
    if tail:
        new_pos = {"dev": st.st_dev, "ino": st.st_ino, "offset": offset, "tail_len": len(tail),
                   "tail_sha256": hashlib.sha256(tail).hexdigest()}
    elif pos is not None and plan == [(log, int(pos["offset"]))]:
        new_pos = {k: pos[k] for k in ("dev", "ino", "offset", "tail_len", "tail_sha256")}
    else:
        new_pos = {"dev": st.st_dev, "ino": st.st_ino, "offset": 0, "tail_len": 0, "tail_sha256": ""}
    new_pos["mtime_ns"] = st.st_mtime_ns
    new_pos["parser"] = parser.state()
    new_pos["last_time"] = last_time
    result.unparsed = parser.unparsed
    storage.commit(source, new_pos, tally.keyed(), result.unparsed, tally.plain_peers())
    return result

