"""Reading TOML tables with errors that point at the file, the line, the table and the key.

A :class:`Loader` is one config file; the errors of every file read in one run go to one
list, so a config is refused with all its mistakes at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, TypeVar, overload

from certmgr.errors import ConfigError, raise_all
from certmgr.options import unknown_key

T = TypeVar("T")
_MTA_HEADER = re.compile(r"^\s*\[\[\s*mta\s*\]\]")
_PARTNER_HEADER = re.compile(r"^\s*\[\[\s*partner\s*\]\]")


def find_line(text: str, table: str | None, key: str | None) -> int | None:
    """Best-effort line of ``key`` inside ``[table]`` (or ``[[mta]] #n``, ``[[partner]] #n``) in TOML text."""
    return _find_line(text.splitlines(), table, key, None) if text else None


def _find_line(lines: list[str], table: str | None, key: str | None, mta_starts: list[int] | None) -> int | None:
    if not table:
        return None
    start = 0
    m = re.match(r"^(mta|partner) #(\d+)", table)
    if m:
        array, nth = m.group(1), int(m.group(2))
        if array == "partner":
            starts = [i for i, ln in enumerate(lines) if _PARTNER_HEADER.match(ln)]
        else:
            if mta_starts is None:
                mta_starts = [i for i, ln in enumerate(lines) if _MTA_HEADER.match(ln)]
            starts = mta_starts
        if not 0 < nth <= len(starts):
            return None
        start = starts[nth - 1]
    else:
        quoted = re.match(r'^([A-Za-z0-9_-]+)\."([^"]+)"$', table)  # [mta_sts."example.com"]
        head = [quoted.group(1), f'"{quoted.group(2)}"'] if quoted else table.split(".")
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
    """Reads the core's keys of one table and refuses the rest.

    ``allowed``: the table's keys, when known up front: unknown ones are then reported at
    once (all of them, each with the closest allowed key), even if reading a value fails
    later.  ``defaults``: a table whose values stand in for keys this one does not set;
    an error in such a value is reported at the defaults table.
    """

    def __init__(self, loader: Loader, data: Any, table: str, *, allowed: Collection[str] | None = None,
                 defaults: Table | None = None) -> None:
        self.loader = loader
        self.table = table
        if not isinstance(data, dict):
            raise loader.error(f"must be a table, got {type(data).__name__}", table, None)
        self.data: dict[str, Any] = data
        self.seen: set[str] = set()
        self.allowed = allowed
        self.defaults = defaults
        #: a value of this table was wrong (and reported): what was read from it is not to be used
        self.failed = False
        if allowed is not None:
            for key in data:
                if key not in allowed:
                    loader.report(self.err(key, unknown_key(key, allowed)))

    def err(self, key: str | None, message: str) -> ConfigError:
        if key is not None and key not in self.data and self.defaults is not None and key in self.defaults.data:
            return self.defaults.err(key, message)
        return self.loader.error(message, self.table, key)

    @overload
    def check(self, parse: Callable[[], T]) -> T | None: ...
    @overload
    def check(self, parse: Callable[[], T], fallback: T) -> T: ...

    def check(self, parse: Callable[[], T], fallback: T | None = None) -> T | None:
        """``parse()``; if it fails, report its error, mark the table failed and go on with
        ``fallback``, so the table's other values are checked too."""
        try:
            return parse()
        except ConfigError as e:
            self.loader.report(e)
            self.failed = True
            return fallback

    def get(self, key: str, types: type | tuple[type, ...], default: Any = None, required: bool = False) -> Any:
        self.seen.add(key)
        if key in self.data:
            value = self.data[key]
        elif self.defaults is not None and key in self.defaults.data:
            value = self.defaults.data[key]
        elif required:
            raise self.err(key, "is required")
        else:
            return default
        allowed = types if isinstance(types, tuple) else (types,)
        if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, types):
            want = " or ".join(t.__name__ for t in allowed)
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
        """Refuse the keys nobody read (a table whose keys were not given up front)."""
        if self.allowed is not None:
            return
        unknown = sorted(set(self.data) - self.seen)
        raise_all([self.err(key, unknown_key(key, self.seen)) for key in unknown])


class Loader:
    """One config file: its path and text, and the list its errors are reported to."""

    def __init__(self, path: Path | str, text: str, errors: list[ConfigError] | None = None) -> None:
        #: the file as errors name it (a str: 10,000 included files need no Path objects)
        self.file = str(path)
        self.text = text
        self.errors: list[ConfigError] = [] if errors is None else errors
        self._lines: list[str] | None = None
        self._mta_starts: list[int] | None = None

    @property
    def path(self) -> Path:
        return Path(self.file)

    def line(self, table: str | None, key: str | None) -> int | None:
        if self._lines is None:  # found once per file: a file of 10,000 [[mta]] may have an error in each
            self._lines = self.text.splitlines()
            self._mta_starts = [i for i, ln in enumerate(self._lines) if _MTA_HEADER.match(ln)]
        return _find_line(self._lines, table, key, self._mta_starts)

    def error(self, message: str, table: str | None, key: str | None) -> ConfigError:
        return ConfigError(message, file=self.file, table=table, key=key, line=self.line(table, key))

    def report(self, err: ConfigError) -> None:
        """Note an error and go on reading: the run ends with all of them."""
        self.errors.append(err)
