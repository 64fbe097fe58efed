"""Typed, validated reading of one provider's config table (re-exported by certmgr.interfaces)."""

from __future__ import annotations

import builtins
import difflib
import os
import stat
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from certmgr.errors import ConfigError, raise_all

_MISSING: Any = object()


def did_you_mean(word: builtins.str, choices: Collection[builtins.str]) -> builtins.str:
    """``"; did you mean X?"`` with the closest of ``choices`` to a misspelt ``word``, or ``""``."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def unknown_key(key: builtins.str, allowed: Collection[builtins.str], what: builtins.str = "key") -> builtins.str:
    """The message for a key (or table) that is not one of ``allowed``."""
    known = ", ".join(sorted(allowed)) or "none"
    return f"unknown {what}{did_you_mean(key, allowed)} (allowed here: {known})"


class Options:
    """Typed, validated access to one config table.

    Every getter marks the key as known; :meth:`finish` refuses the rest, so an
    unknown or misspelt key is an error naming that key.
    """

    def __init__(self, table: Mapping[str, Any], *, where: builtins.str, base_dir: Path) -> None:
        self._table = dict(table)
        self._seen: set[str] = set()
        self.where = where
        self.base_dir = base_dir

    def _err(self, key: builtins.str, message: builtins.str) -> ConfigError:
        return ConfigError(message, table=self.where, key=key)

    def has(self, key: builtins.str) -> builtins.bool:
        return key in self._table

    def peek(self, key: builtins.str) -> Any:
        """The raw value (or None) without marking the key as read."""
        return self._table.get(key)

    def raw(self, key: builtins.str, default: Any = _MISSING) -> Any:
        self._seen.add(key)
        if key in self._table:
            return self._table[key]
        if default is _MISSING:
            # a misspelt required key: say so at the key as written, not only that this one is missing
            typo = difflib.get_close_matches(key, [k for k in self._table if k not in self._seen], n=1, cutoff=0.8)
            if typo:
                self._seen.add(typo[0])
                raise self._err(typo[0], f"unknown key; did you mean {key}? ({key} is required)")
            raise self._err(key, "is required")
        return default

    def str(self, key: builtins.str, default: Any = _MISSING, *, choices: Sequence[str] | None = None) -> Any:
        value = self.raw(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, builtins.str) or not value:
            raise self._err(key, f"must be a non-empty string, got {value!r}")
        if choices is not None and value not in choices:
            raise self._err(key, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def int(
        self, key: builtins.str, default: Any = _MISSING, *,
        min: builtins.int | None = None, max: builtins.int | None = None,
    ) -> Any:
        value = self.raw(key, default)
        if value is default and default is not _MISSING:
            return value
        if isinstance(value, builtins.bool) or not isinstance(value, builtins.int):
            raise self._err(key, f"must be an integer, got {value!r}")
        if (min is not None and value < min) or (max is not None and value > max):
            raise self._err(key, f"must be between {min} and {max}, got {value}")
        return value

    def float(self, key: builtins.str, default: Any = _MISSING, *, min: builtins.float | None = None) -> Any:
        value = self.raw(key, default)
        if value is default and default is not _MISSING:
            return value
        if isinstance(value, builtins.bool) or not isinstance(value, builtins.int | float):
            raise self._err(key, f"must be a number, got {value!r}")
        if min is not None and value < min:
            raise self._err(key, f"must be at least {min}, got {value}")
        return float(value)

    def bool(self, key: builtins.str, default: Any = _MISSING) -> Any:
        value = self.raw(key, default)
        if not isinstance(value, builtins.bool):
            raise self._err(key, f"must be true or false, got {value!r}")
        return value

    def str_list(self, key: builtins.str, default: Any = _MISSING) -> Any:
        value = self.raw(key, default)
        if value is default and default is not _MISSING:
            return value
        if isinstance(value, builtins.str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, builtins.str) and v for v in value):
            raise self._err(key, f"must be a list of non-empty strings, got {value!r}")
        return list(value)

    def command(self, key: builtins.str, default: Any = _MISSING) -> Any:
        """A command as a list of arguments.  A string is refused: no shell ever parses it."""
        value = self.raw(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, list) or not value or not all(isinstance(v, builtins.str) and v for v in value):
            raise self._err(key, f'must be a list of arguments, run without a shell, e.g. ["/usr/sbin/postfix", '
                                 f'"reload"]; got {value!r}')
        return list(value)

    def table(self, key: builtins.str, default: Any = _MISSING) -> Any:
        value = self.raw(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, Mapping):
            raise self._err(key, f"must be a table, got {value!r}")
        return Options(value, where=f"{self.where}.{key}", base_dir=self.base_dir)

    def path(self, key: builtins.str, default: Any = _MISSING, *, must_exist: builtins.bool = False) -> Any:
        value = self.str(key, default)
        if value is default and default is not _MISSING:
            return value
        p = Path(value)
        if not p.is_absolute():
            p = self.base_dir / p
        if must_exist and not p.exists():
            raise self._err(key, f"file {p} does not exist")
        return p

    def secret(self, key: builtins.str, *, required: builtins.bool = True) -> builtins.str | None:
        """Read a secret from ``<key>_file`` (a path) or ``<key>_env`` (a variable name).

        An inline ``<key>`` is refused: secrets never sit in the config file.
        """
        if key in self._table:
            self._seen.add(key)
            raise self._err(
                key,
                f"secrets are not accepted inline; put it in a file and set {key}_file, "
                f"or in an environment variable and set {key}_env",
            )
        if self.has(f"{key}_file"):
            p: Path = self.path(f"{key}_file")
            text: builtins.str = _read_secret_file(p, lambda m: self._err(f"{key}_file", m)).strip()
            if not text:
                raise self._err(f"{key}_file", f"{p} is empty")
            return text
        if self.has(f"{key}_env"):
            var = self.str(f"{key}_env")
            val: builtins.str | None = os.environ.get(str(var))
            if not val:
                raise self._err(f"{key}_env", f"environment variable {var} is not set")
            return val
        if required:
            raise self._err(f"{key}_file", f"is required (or {key}_env)")
        return None

    def finish(self) -> None:
        unknown = sorted(set(self._table) - self._seen)
        raise_all([self._err(key, unknown_key(key, self._seen)) for key in unknown])


#: a secret file is a password or a key, not a large file
_SECRET_MAX = 64 * 1024


def _read_secret_file(path: Path, err: Any) -> builtins.str:
    """A small regular UTF-8 file; a FIFO or device is refused, never waited on or read forever."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise err(f"cannot read {path}: {e.strerror}") from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise err(f"{path} is not a regular file")
        data = os.read(fd, _SECRET_MAX + 1)
    except OSError as e:
        raise err(f"cannot read {path}: {e.strerror}") from e
    finally:
        os.close(fd)
    if len(data) > _SECRET_MAX:
        raise err(f"{path} is larger than {_SECRET_MAX} bytes; it should hold only the secret")
    try:
        return data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError as e:
        raise err(f"{path} is not UTF-8 text (byte {e.start}); write the secret as text") from e
