"""Real journal files holding a real MTA's log, read back with the real ``journalctl``.

``JournalRelay`` does what journald does with a daemon's syslog messages: each
new line of a ``PostfixPeer``'s log (``TIME HOST IDENT[PID]: MESSAGE``) becomes
a journal entry (``MESSAGE``, ``SYSLOG_IDENTIFIER``, ``SYSLOG_PID``, ``_PID``,
``_HOSTNAME``, ``_SYSTEMD_UNIT``, the line's time as ``__REALTIME_TIMESTAMP``),
written in the journal export format through ``systemd-journal-remote`` into
``directory/remote.journal`` (appended to on every ``ship``), which
``journalctl --directory`` reads like the system journal.  An Exim main log
(``DATE TIME [PID] MESSAGE``) is relayed as Exim's syslog messages are
(``SYSLOG_IDENTIFIER=exim``, the message without the time).
"""

from __future__ import annotations

import re
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

from tests.peers.util import require_binary

_LINE = re.compile(r"(?P<ts>[A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d) (?P<host>\S+) (?P<ident>[^\s\[]+)\[(?P<pid>\d+)\]: "
                   r"(?P<msg>.*)$")
_EXIM = re.compile(r"(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:\.\d+)?(?: [+-]\d{4})?(?: \[(?P<pid>\d+)\])? "
                   r"(?P<msg>.*)$")


class JournalRelay:
    def __init__(self, directory: Path, log: Path, *, unit: str = "postfix.service") -> None:
        self.binary = require_binary("systemd-journal-remote", dirs=("/lib/systemd", "/usr/lib/systemd"))
        require_binary("journalctl")
        self.directory, self.log, self.unit = directory, log, unit
        directory.mkdir(parents=True, exist_ok=True)
        self._offset = 0  # bytes of the log already shipped
        self._boot = uuid.uuid4().hex
        self._seq = 0

    def _entry(self, line: str) -> bytes | None:
        if m := _LINE.match(line):
            when = datetime.strptime(f"{datetime.now(UTC).year} {m['ts']}", "%Y %b %d %H:%M:%S")
            host, ident, pid = m["host"], m["ident"], m["pid"]
        elif m := _EXIM.match(line):
            when = datetime.strptime(m["ts"], "%Y-%m-%d %H:%M:%S")
            host, ident, pid = "mx", "exim", m["pid"] or "1"
        else:
            return None
        self._seq += 1
        fields = {
            "__REALTIME_TIMESTAMP": str(int(when.replace(tzinfo=UTC).timestamp()) * 1_000_000 + self._seq % 1_000_000),
            "__MONOTONIC_TIMESTAMP": str(self._seq), "_BOOT_ID": self._boot, "_HOSTNAME": host,
            "_SYSTEMD_UNIT": self.unit, "_PID": pid, "SYSLOG_PID": pid, "SYSLOG_FACILITY": "2",
            "SYSLOG_IDENTIFIER": ident, "PRIORITY": "6", "MESSAGE": m["msg"],
        }
        return "".join(f"{k}={v}\n" for k, v in fields.items()).encode() + b"\n"

    def ship(self) -> int:
        """Write the log's lines not shipped yet into the journal; how many entries were written."""
        with open(self.log, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        entries = [e for line in complete.decode().splitlines() if (e := self._entry(line)) is not None]
        if entries:
            subprocess.run([self.binary, "--output", str(self.directory / "remote.journal"), "-"],
                           input=b"".join(entries), check=True, capture_output=True, timeout=60)
        return len(entries)
