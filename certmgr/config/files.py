"""Finding and reading config files: the main file, the files it includes, their TOML."""

from __future__ import annotations

import glob
import os
import re
import stat
from pathlib import Path
from typing import Any

# tomli, compiled, reads a large config twice as fast as tomllib (the same parser in pure Python)
from tomli import TOMLDecodeError
from tomli import loads as toml_loads

from certmgr.config.model import DEFAULT_CONFIG
from certmgr.config.toml import Loader
from certmgr.errors import ConfigError


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


def parse_toml(ld: Loader) -> dict[str, Any]:
    try:
        return toml_loads(ld.text)
    except TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise ConfigError(f"not valid TOML: {e}", file=ld.file, line=int(m.group(1)) if m else None) from e


def include_files(ld: Loader, raw: Any) -> list[str]:
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
