"""What ``collect`` and ``report`` share: the ``[monitor]`` table of the config."""

from __future__ import annotations

from certmgr.config.model import Config
from certmgr.errors import ConfigError
from certmgr.monitor.config import MonitorConfig


def monitor_config(cfg: Config) -> MonitorConfig:
    if cfg.monitor is None:
        raise ConfigError("has no [monitor] table: add one with the mail logs to read (see the README)",
                          file=str(cfg.path), table="monitor")
    return cfg.monitor
