"""`certmgr validate` checks what each local deploy target needs on this machine: the
directories it reads, the directories it writes into, the commands it runs.  A config that
validates must deploy; one naming a Postfix directory that does not exist, or a reload
command with a typo, fails here with the file, line, table and option instead of at the
first renewal.  Targets on another host (ssh://) are not checked: validate does not connect."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.unit.test_shared_targets import config
from tests.unit.test_shared_targets import validate as validate_file


def validate(tmp_path: Path, deploy: str) -> subprocess.CompletedProcess[str]:
    return validate_file(config(tmp_path, deploy, hostnames=("mx.example.com",)))


@pytest.fixture
def postfix_dir(tmp_path: Path) -> Path:
    d = tmp_path / "postfix"
    d.mkdir()
    (d / "main.cf").write_text("compatibility_level = 3.6\n")
    return d


def test_a_target_whose_paths_and_commands_exist_validates(tmp_path: Path, postfix_dir: Path) -> None:
    r = validate(tmp_path, f'type = "postfix"\nconfig_dir = "{postfix_dir}"\n'
                           f'cert_dir = "{tmp_path}/not-yet/certs"\nreload_command = ["postfix", "reload"]')
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout


@pytest.mark.parametrize(("deploy", "line", "key", "words"), [
    ('type = "postfix"\nconfig_dir = "{tmp}/postfixx"', 9, "config_dir", "postfixx does not exist"),
    ('type = "postfix"\nconfig_dir = "{tmp}"', 9, "config_dir", "main.cf does not exist"),
    ('type = "postfix"\nconfig_dir = "{postfix}"\nreload_command = ["postifx", "reload"]', 10, "reload_command",
     "'postifx' is not found in PATH"),
    ('type = "postfix"\nconfig_dir = "{postfix}"\ncert_dir = "{postfix}/main.cf/certs"', 10, "cert_dir",
     "is a file on this machine"),
    ('type = "exec"\ncert_dir = "{tmp}/certs"\ncommand = ["{tmp}/hook.sh"]', 10, "command",
     "hook.sh does not exist"),
    ('type = "webroot"\nwebroot = "{tmp}/www"\ncert_file = "{tmp}/c.pem"\nkey_file = "{tmp}/k.pem"\n'
     'reload = ["/usr/sbin/nginxx", "-s", "reload"]', 12, "reload", "/usr/sbin/nginxx does not exist"),
    ('type = "dovecot"\ncert_dir = "{tmp}/certs"\ndovecot_config = "{tmp}/dovecot.conf"', 10, "dovecot_config",
     "dovecot.conf does not exist"),
    ('type = "exim"\ncert_dir = "{tmp}/certs"\nexim_binary = "exim5"', 10, "exim_binary",
     "'exim5' is not found in PATH"),
])
def test_what_cannot_work_on_this_machine_fails_validate(tmp_path: Path, postfix_dir: Path, deploy: str,
                                                         line: int, key: str, words: str) -> None:
    r = validate(tmp_path, deploy.format(tmp=tmp_path, postfix=postfix_dir))
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"certmgr.toml:{line} [deploy.out] {key}: " in r.stderr, r.stderr
    assert words in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").iterdir())


def test_every_problem_is_reported_in_one_run(tmp_path: Path) -> None:
    r = validate(tmp_path, f'type = "postfix"\nconfig_dir = "{tmp_path}/nope"\n'
                           'reload_command = ["/nonexistent/postfix", "reload"]')
    assert r.returncode == 2
    assert "nope does not exist" in r.stderr and "/nonexistent/postfix does not exist" in r.stderr
    assert "main.cf" not in r.stderr  # inside the directory already said to be missing


def test_a_target_on_another_host_is_not_checked_here(tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    r = validate(tmp_path, f'type = "postfix"\nhost = "ssh://root@192.0.2.1"\nssh_known_hosts = "{known_hosts}"\n'
                           f'config_dir = "/srv/only-on-the-mta/postfix"')
    assert r.returncode == 0, r.stderr
