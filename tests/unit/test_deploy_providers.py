"""Contract of every registered deployer: loads by entry point, documents itself, validates its table."""

from __future__ import annotations

import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from certmgr.errors import ConfigError
from certmgr.interfaces import Options, ProviderEnv

MINIMAL: dict[str, dict[str, Any]] = {
    "postfix": {"config_dir": "/etc/postfix"},
    "exim": {"cert_dir": "/etc/exim4/certmgr"},
    "dovecot": {"cert_dir": "/etc/dovecot/certmgr"},
    "exec": {"command": ["/bin/true"], "cert_dir": "/etc/certmgr/out"},
    "exchange": {"command": ["/bin/true"], "cert_dir": "/var/lib/certmgr/exchange", "pfx_password_env": "PFX_PW"},
}


def registered() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group="certmgr.deployers")}


def build(name: str, table: dict[str, Any], tmp_path: Path) -> Any:
    cls = registered()[name].load()
    return cls.from_config("t", Options(table, where=f"deploy.{name}", base_dir=tmp_path),
                           ProviderEnv(config_dir=tmp_path, state_dir=tmp_path))


def test_the_built_in_deployers_are_registered() -> None:
    assert set(MINIMAL) <= set(registered())


@pytest.mark.parametrize("name", sorted(MINIMAL))
def test_contract(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PFX_PW", "pw")
    cls = registered()[name].load()
    assert isinstance(cls.description, str) and cls.description
    assert (sys.modules[cls.__module__].__doc__ or "").strip(), f"{cls.__module__} has no docstring"
    deployer = build(name, MINIMAL[name], tmp_path)
    assert callable(deployer.install) and callable(deployer.rollback)
    with pytest.raises(ConfigError) as e:
        build(name, {**MINIMAL[name], "no_such_key": 1}, tmp_path)
    assert e.value.key == "no_such_key" and e.value.table == f"deploy.{name}"


@pytest.mark.parametrize("name", sorted(MINIMAL))
def test_remote_host_needs_known_hosts(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PFX_PW", "pw")
    with pytest.raises(ConfigError) as e:
        build(name, {**MINIMAL[name], "host": "ssh://root@mx1.example.com"}, tmp_path)
    assert e.value.key == "ssh_known_hosts"
    deployer = build(name, {**MINIMAL[name], "host": "ssh://deploy@mx1.example.com:2222",
                            "ssh_known_hosts": "/etc/certmgr/known_hosts"}, tmp_path)
    assert deployer.target.endswith(" on ssh://deploy@mx1.example.com:2222")


def test_postfix_config_test_is_postfix_check_for_root_and_postconf_for_anyone_else(tmp_path: Path) -> None:
    known = {"ssh_known_hosts": "/etc/certmgr/known_hosts"}
    as_root = build("postfix", {**MINIMAL["postfix"], "host": "ssh://root@mx1.example.com", **known}, tmp_path)
    assert as_root.check().argv == ("postfix", "-c", "/etc/postfix", "check")
    as_user = build("postfix", {**MINIMAL["postfix"], "host": "ssh://certmgr@mx1.example.com", **known}, tmp_path)
    # `postfix check` is for root only and fails silently otherwise; postconf parses main.cf for anyone
    assert as_user.check().argv == ("postconf", "-c", "/etc/postfix", "-n")
    # a silent failure of the root-only reload says why and how to set reload_command
    why = as_user.silent_failure(as_user.reload([])[0])
    assert "for root only" in why and '["sudo", "-n", "/usr/sbin/postfix", "-c", "/etc/postfix", "reload"]' in why
    assert "mail log" in as_root.silent_failure(as_root.reload([])[0])
