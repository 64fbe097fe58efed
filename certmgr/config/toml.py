"""Reading TOML tables with errors that point at the file, the line, the table and the key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from certmgr.errors import ConfigError


def find_line(text: str, table: str | None, key: str | None) -> int | None:
    """Best-effort line of ``key`` inside ``[table]`` (or ``[[mta]] #n``) in TOML text."""
    if not text or not table:
        return None
    lines = text.splitlines()
    start = 0
    m = re.match(r"^mta #(\d+)", table)
    if m:
        nth = int(m.group(1))
        seen = 0
        for i, ln in enumerate(lines):
            if re.match(r"^\s*\[\[\s*mta\s*\]\]", ln):
                seen += 1
                if seen == nth:
                    start = i
                    break
        else:
            return None
    else:
        head = table.split(".")
        pat = re.compile(r"^\s*\[\s*" + r"\s*\.\s*".join(re.escape(h) for h in head[:2]) + r"\s*\]")
        for i, ln in enumerate(lines):
            if pat.match(ln):
                start = i
                break
        else:
            return None
    if not key:
        return start + 1
    keypat = re.compile(r"^\s*" + re.escape(key.split(".")[0]) + r"\s*=")
    inline = re.compile(r"[{,]\s*" + re.escape(key.split(".")[-1]) + r"\s*=")
    for i in range(start + 1, len(lines)):
        if re.match(r"^\s*\[", lines[i]):
            break
        if keypat.match(lines[i]) or inline.search(lines[i]):
            return i + 1
    return start + 1


class Table:
    """Reads the core's keys of one table and refuses the rest."""

    def __init__(self, loader: Loader, data: Any, table: str) -> None:
        self.loader = loader
        self.table = table
        if not isinstance(data, dict):
            raise loader.error(f"must be a table, got {type(data).__name__}", table, None)
        self.data: dict[str, Any] = data
        self.seen: set[str] = set()

    def err(self, key: str | None, message: str) -> ConfigError:
        return self.loader.error(message, self.table, key)

    def get(self, key: str, types: type | tuple[type, ...], default: Any = None, required: bool = False) -> Any:
        self.seen.add(key)
        if key not in self.data:
            if required:
                raise self.err(key, "is required")
            return default
        value = self.data[key]
        if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            raise self.err(key, f"has the wrong type: got {value!r}")
        if not isinstance(value, types):
            want = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
            raise self.err(key, f"must be {want.replace('str', 'a string').replace('list', 'a list')}, got {value!r}")
        return value

    def str_list(self, key: str) -> list[str]:
        value = self.get(key, (list, str), default=[])
        if isinstance(value, str):
            value = [value]
        for v in value:
            if not isinstance(v, str) or not v:
                raise self.err(key, f"must be a list of non-empty strings, got {value!r}")
        return list(value)

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            raise self.err(unknown[0], f"unknown key (allowed: {', '.join(sorted(self.seen))})")


class Loader:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.text = text

    def error(self, message: str, table: str | None, key: str | None) -> ConfigError:
        return ConfigError(message, file=str(self.path), table=table, key=key, line=find_line(self.text, table, key))
