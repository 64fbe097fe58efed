"""`certmgr validate` on a deploy target several [[mta]] tables share (one MTA instance serving
several hostnames): accepted when the deployer can choose a certificate by SNI, refused with the
reason, file, table and line otherwise; ``primary`` must name one of its MTAs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from certmgr.config.load import load_config
from tests.peers.exim import EXIM_DIR


def config(tmp_path: Path, deploy: str, *, primary: str = "",
           hostnames: tuple[str, ...] = ("mx.example.com", "submit.example.com")) -> Path:
    path = tmp_path / "certmgr.toml"
    mtas = "".join(f'\n[[mta]]\nhostname = "{h}"\nissuer = "corp"\ndeploy = ["out"]\n' for h in hostnames)
    path.write_text(f"""[certmgr]
state_dir = "{tmp_path / 'state'}"

[issuer.corp]
type = "manual"

[deploy.out]
{deploy}
{primary}
{mtas}""")
    return path


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "certmgr", "-c", str(path), "validate"], capture_output=True,
                          text=True)


@pytest.mark.parametrize(("deploy", "why"), [
    ('type = "exec"\ncommand = ["/bin/true"]\ncert_dir = "/tmp/x"', "runs your command once per certificate"),
    ('type = "exim"\ncert_dir = "/etc/exim4/certmgr"', "it needs tls_config"),
    ('type = "dovecot"\ncert_dir = "/etc/dovecot/certmgr"', "it needs config_file"),
])
def test_shared_target_that_cannot_do_sni_is_refused(tmp_path: Path, deploy: str, why: str) -> None:
    path = config(tmp_path, deploy)
    r = validate(path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"{path}:8 [deploy.out] type" in r.stderr, r.stderr
    assert "mx.example.com, submit.example.com" in r.stderr and why in r.stderr
    assert not (tmp_path / "state").exists(), "validate must write nothing"


@pytest.mark.parametrize("deploy", [
    'type = "postfix"\nconfig_dir = "/etc/postfix"',
    # exim4 is unpacked beside the system, not installed: validate checks that the binary exists
    'type = "exim"\ncert_dir = "/etc/exim4/certmgr"\ntls_config = "/etc/exim4/certmgr/tls.conf"\n'
    f'exim_binary = "{EXIM_DIR}/usr/sbin/exim4"',
    'type = "dovecot"\ncert_dir = "/etc/dovecot/certmgr"\nconfig_file = "/etc/dovecot/conf.d/99-certmgr.conf"',
])
def test_shared_target_that_can_do_sni_is_accepted(tmp_path: Path, deploy: str) -> None:
    r = validate(config(tmp_path, deploy))
    assert r.returncode == 0, r.stderr


def test_primary_defaults_to_the_first_mta_and_can_be_set(tmp_path: Path) -> None:
    postfix = 'type = "postfix"\nconfig_dir = "/etc/postfix"'
    cfg = load_config(config(tmp_path, postfix))
    assert [m.hostname for m in cfg.target_mtas("out")] == ["mx.example.com", "submit.example.com"]
    cfg = load_config(config(tmp_path, postfix, primary='primary = "submit.example.com"'))
    assert [m.hostname for m in cfg.target_mtas("out")] == ["submit.example.com", "mx.example.com"]
    assert validate(config(tmp_path, postfix, primary='primary = "SUBMIT.example.com."')).returncode == 0


def test_primary_must_be_one_of_its_mtas(tmp_path: Path) -> None:
    path = config(tmp_path, 'type = "postfix"\nconfig_dir = "/etc/postfix"', primary='primary = "imap.example.com"')
    r = validate(path)
    assert r.returncode == 2
    assert "[deploy.out] primary" in r.stderr and "mx.example.com, submit.example.com" in r.stderr, r.stderr


def test_two_tables_for_one_postfix_are_refused(tmp_path: Path) -> None:
    """The same outage through two tables: each [[mta]] its own [deploy] of one config_dir."""
    path = config(tmp_path, 'type = "postfix"\nconfig_dir = "/etc/postfix"')
    text = path.read_text().replace('deploy = ["out"]', 'deploy = ["sub"]', 1)
    text = text.replace("[[mta]]", '[deploy.sub]\ntype = "postfix"\nconfig_dir = "/etc/postfix/"\n\n[[mta]]', 1)
    path.write_text(text)
    r = validate(path)
    assert r.returncode == 2, r.stdout
    assert "[deploy.sub] config_dir" in r.stderr and "same MTA instance as [deploy.out]" in r.stderr, r.stderr
    assert "postfix /etc/postfix on local" in r.stderr


def test_mtas_sharing_a_target_are_renewed_and_deployed_by_one_worker() -> None:
    from certmgr.config.model import MtaConfig
    from certmgr.deploy.orchestrate import deploy_units

    def mta(host: str, *deploy: str) -> MtaConfig:
        return MtaConfig(host, (), ("rsa-2048",), "corp", deploy)

    a, b, c, d = mta("a.example", "x"), mta("b.example", "y"), mta("c.example", "y", "x"), mta("d.example")
    assert [[m.hostname for m in g] for g in deploy_units([a, b, c, d])] == [
        ["a.example", "b.example", "c.example"], ["d.example"]]
