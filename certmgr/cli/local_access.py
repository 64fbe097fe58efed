"""What `certmgr validate`, run as the user the service runs as, can tell about the local files
and ports a config names: a ``[monitor]`` log, maildir or HTTPS key this user cannot read, or a
TLS-RPT endpoint on the metrics address, validates as TOML yet cannot work (`collect` or the
daemon would fail at each run). Checked only by `validate`, not at every load: a log rotated
away for a moment must not stop `renew`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from certmgr.config.model import Config
from certmgr.errors import ConfigError


def _unreadable(path: Path, *, directory: bool = False) -> str | None:
    """Why this process cannot read ``path`` (a file, or a directory it must list), or None."""
    if not path.exists():
        return f"{path} does not exist"
    if directory != path.is_dir():
        return f"{path} is {'not ' if directory else ''}a directory"
    if not os.access(path, os.R_OK | (os.X_OK if directory else 0)):
        st = path.stat()
        return f"{path} is not readable by this user (mode {st.st_mode & 0o777:04o}, uid {st.st_uid}, gid {st.st_gid})"
    return None


def monitor_access_errors(cfg: Config) -> Iterator[ConfigError]:
    """One error per ``[monitor]`` file or endpoint that this user cannot use."""
    mon = cfg.monitor
    if mon is None:
        return
    for source in mon.logs:
        why = _unreadable(source.path) if source.path is not None else None  # a journal unit has no file
        if why:
            yield ConfigError(f"{why}; certmgr collect reads it as this user (for /var/log/mail.log, "
                              "root:adm 0640 on Debian: add the certmgr user to group adm)", table="monitor",
                              key="logs")
    if mon.tlsrpt_maildir is not None:
        for sub in ("", "new", "cur"):
            why = _unreadable(mon.tlsrpt_maildir / sub, directory=True)
            if why:
                yield ConfigError(f"maildir {why}; give this user read access to the maildir",
                                  table="monitor", key="tlsrpt")
                break
    for key, file in (("cert", mon.tlsrpt_cert), ("key", mon.tlsrpt_key)):
        why = _unreadable(file) if file is not None else None
        if why:
            yield ConfigError(f"{key} {why}; the daemon could not start its HTTPS endpoint",
                              table="monitor", key="tlsrpt")
    if mon.tlsrpt_listen is not None and cfg.daemon.metrics_listen:
        host, port = mon.tlsrpt_listen
        m_host, _, m_port = cfg.daemon.metrics_listen.rpartition(":")
        hosts = {host, m_host.strip("[]")}
        if m_port == str(port) and (len(hosts) == 1 or hosts & {"0.0.0.0", "::", ""}):
            yield ConfigError(f"listen {host}:{port} is also the daemon's metrics_listen; "
                              "give the TLS-RPT endpoint another port", table="monitor", key="tlsrpt")
