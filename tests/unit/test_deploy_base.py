"""The shared deployer path, exercised through the exec and exchange deployers on this machine."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12

from certmgr.errors import ConfigError, DeployError
from certmgr.interfaces import DeployRequest, Options, ProviderEnv, VerifyTarget
from providers.deployers.exchange import ExchangeDeployer, thumbprint
from providers.deployers.exec import ExecDeployer
from tests.peers.testca import TestCA

HOST = "mx1.example.com"
# records its environment, one JSON line per run; fails when FAIL_FILE exists
RECORDER = """
import json, os, sys
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({k: v for k, v in os.environ.items() if k.startswith("CERTMGR_")}) + "\\n")
sys.exit(3 if os.path.exists(sys.argv[2]) else 0)
"""


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


def options(tmp_path: Path, table: dict[str, Any]) -> tuple[Options, ProviderEnv]:
    env = ProviderEnv(config_dir=tmp_path, state_dir=tmp_path)
    return Options(table, where="deploy.x", base_dir=tmp_path), env


def exec_deployer(tmp_path: Path, **extra: Any) -> ExecDeployer:
    command = [sys.executable, "-c", RECORDER, str(tmp_path / "runs.jsonl"), str(tmp_path / "fail")]
    table = {"command": command,
             "cert_dir": str(tmp_path / "certs"), **extra}
    return ExecDeployer.from_config("x", *options(tmp_path, table))


def runs(tmp_path: Path) -> list[dict[str, str]]:
    path = tmp_path / "runs.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def request(*bundles: Any) -> DeployRequest:
    return DeployRequest(hostname=HOST, bundles=bundles, verify=VerifyTarget("127.0.0.1", 25))


def test_exec_writes_files_and_runs_command_per_certificate(tmp_path: Path, ca: TestCA) -> None:
    rsa, ec = ca.leaf(HOST, ("mail.example.com",)), ca.leaf(HOST, key_type="ecdsa-p256")
    installed = exec_deployer(tmp_path).install(request(rsa, ec))
    certs = tmp_path / "certs"
    assert (certs / f"{HOST}.rsa.key").read_bytes() == rsa.key_pem
    assert stat.S_IMODE((certs / f"{HOST}.rsa.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((certs / f"{HOST}.rsa.crt").stat().st_mode) == 0o644
    assert (certs / f"{HOST}.ecdsa.fullchain.pem").read_bytes() == ec.cert_pem + ec.chain_pem
    first, second = runs(tmp_path)
    assert first == {
        "CERTMGR_HOSTNAME": HOST, "CERTMGR_NAMES": f"{HOST} mail.example.com",
        "CERTMGR_CERT": f"{certs}/{HOST}.rsa.crt", "CERTMGR_KEY": f"{certs}/{HOST}.rsa.key",
        "CERTMGR_CHAIN": f"{certs}/{HOST}.rsa.chain.pem",
        "CERTMGR_FULLCHAIN": f"{certs}/{HOST}.rsa.fullchain.pem",
        "CERTMGR_KEY_TYPE": "rsa-2048", "CERTMGR_SERIAL": rsa.serial, "CERTMGR_SHA256": rsa.sha256,
        "CERTMGR_NOT_AFTER": rsa.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    assert second["CERTMGR_KEY_TYPE"] == "ecdsa-p256" and second["CERTMGR_SHA256"] == ec.sha256
    assert installed.verify == (VerifyTarget("127.0.0.1", 25),)
    json.dumps(dict(installed.backup))  # the core may record it


def test_failed_command_restores_previous_files_and_reruns_for_them(tmp_path: Path, ca: TestCA) -> None:
    old, new = ca.leaf(HOST), ca.leaf(HOST)
    deployer = exec_deployer(tmp_path)
    deployer.commit(deployer.install(request(old)))  # verified
    (tmp_path / "fail").touch()
    with pytest.raises(DeployError) as e:
        deployer.install(request(new))
    assert "exec reload" in str(e.value) and "exit code 3" in str(e.value)
    assert (tmp_path / "certs" / f"{HOST}.rsa.crt").read_bytes() == old.cert_pem
    assert [r["CERTMGR_SHA256"] for r in runs(tmp_path)] == [old.sha256, new.sha256, old.sha256]


def test_failed_first_deployment_leaves_nothing_behind(tmp_path: Path, ca: TestCA) -> None:
    (tmp_path / "fail").touch()
    with pytest.raises(DeployError, match="the previous files are back"):
        exec_deployer(tmp_path).install(request(ca.leaf(HOST)))
    assert sorted(p.name for p in (tmp_path / "certs").iterdir()) == []


def test_rollback_puts_back_the_previous_files(tmp_path: Path, ca: TestCA) -> None:
    old, new = ca.leaf(HOST), ca.leaf(HOST)
    deployer = exec_deployer(tmp_path)
    deployer.commit(deployer.install(request(old)))  # verified
    installed = deployer.install(request(new))
    deployer.rollback(installed)
    assert (tmp_path / "certs" / f"{HOST}.rsa.key").read_bytes() == old.key_pem
    assert runs(tmp_path)[-1]["CERTMGR_SHA256"] == old.sha256


def test_group_makes_keys_0640(tmp_path: Path, ca: TestCA) -> None:
    exec_deployer(tmp_path, group="root").install(request(ca.leaf(HOST)))
    st = (tmp_path / "certs" / f"{HOST}.rsa.key").stat()
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_gid == 0


def test_refuses_a_symlink_where_the_key_goes(tmp_path: Path, ca: TestCA) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    target = tmp_path / "elsewhere"
    target.write_text("untouched")
    (certs / f"{HOST}.rsa.key").symlink_to(target)
    with pytest.raises(DeployError, match="symbolic link"):
        exec_deployer(tmp_path).install(request(ca.leaf(HOST)))
    assert target.read_text() == "untouched"


def test_two_certificates_of_one_algorithm_are_refused(tmp_path: Path, ca: TestCA) -> None:
    with pytest.raises(DeployError, match="same key algorithm"):
        exec_deployer(tmp_path).install(request(ca.leaf(HOST), ca.leaf(HOST)))


@pytest.mark.parametrize(("table", "key"), [
    ({"command": ["true"], "cert_dir": "/x", "colour": "blue"}, "colour"),
    ({"cert_dir": "/x"}, "command"),
    ({"command": ["true"], "cert_dir": "/x", "host": "root@mx1"}, "host"),
    ({"command": ["true"], "cert_dir": "/x", "host": "ssh://root@mx1"}, "ssh_known_hosts"),
])
def test_config_errors_name_the_key(tmp_path: Path, table: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as e:
        ExecDeployer.from_config("x", *options(tmp_path, table))
    assert e.value.key == key


def test_exchange_pfx_and_script(tmp_path: Path, ca: TestCA) -> None:
    (tmp_path / "pfx.pass").write_text("s3cr'et\n")
    stdin_copy = tmp_path / "script-received.ps1"
    copy_stdin = f"import sys; open({str(stdin_copy)!r}, 'wb').write(sys.stdin.buffer.read())"
    table = {"command": [sys.executable, "-c", copy_stdin],
             "pfx_password_file": "pfx.pass", "cert_dir": str(tmp_path / "exchange")}
    deployer = ExchangeDeployer.from_config("ex", *options(tmp_path, table))
    bundle = ca.leaf(HOST)
    deployer.install(request(bundle))
    pfx_path = tmp_path / "exchange" / f"{HOST}.rsa.pfx"
    assert stat.S_IMODE(pfx_path.stat().st_mode) == 0o600
    loaded = pkcs12.load_pkcs12(pfx_path.read_bytes(), b"s3cr'et")
    assert loaded.cert is not None and loaded.key is not None
    assert loaded.cert.certificate.public_bytes(Encoding.PEM) == bundle.cert_pem
    assert [c.certificate for c in loaded.additional_certs] == [x509.load_pem_x509_certificate(bundle.chain_pem)]
    assert loaded.key.public_key() == loaded.cert.certificate.public_key()
    script = stdin_copy.read_text()
    assert script == (tmp_path / "exchange" / f"{HOST}.rsa.ps1").read_text()
    assert "ConvertTo-SecureString -String 's3cr''et' -AsPlainText -Force" in script
    assert "Import-ExchangeCertificate -FileData $pfx -Password $password" in script
    assert f"Enable-ExchangeCertificate -Thumbprint {thumbprint(bundle)} -Services SMTP -Force" in script
    assert len(thumbprint(bundle)) == 40


def test_exchange_password_is_never_inline(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not accepted inline"):
        ExchangeDeployer.from_config("ex", *options(tmp_path, {"command": ["true"], "cert_dir": "/x",
                                                              "pfx_password": "hunter2"}))
