"""Config validation: one test per kind of bad input, each naming file, table and key."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from certmgr.config.load import load_config
from certmgr.errors import ConfigError

GOOD = """
[certmgr]
state_dir = "{state}"

[issuer.le]
type = "acme"
directory = "https://127.0.0.1:14000/dir"
challenge = {{ type = "http-01", mode = "standalone", port = 5002 }}

[issuer.corp]
type = "manual"

[[mta]]
hostname = "mx1.example.com"
names = ["mail.example.com"]
key = "rsa-2048"
issuer = "le"

[[mta]]
hostname = "mx2.example.com"
key = ["rsa-3072", "ecdsa-p256"]
issuer = "corp"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "certmgr.toml"
    p.write_text(textwrap.dedent(text).replace("{state}", str(tmp_path / "state")))
    return p


def good(tmp_path: Path) -> str:
    return GOOD.replace("{{", "{").replace("}}", "}").replace("{state}", str(tmp_path / "state"))


def error_for(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert err.file == str(path), "every error names the config file"
    return err


def test_good_config_loads(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, good(tmp_path)))
    assert [m.hostname for m in cfg.mtas] == ["mx1.example.com", "mx2.example.com"]
    assert cfg.mtas[0].all_names == ("mx1.example.com", "mail.example.com")
    assert cfg.mtas[1].key_types == ("rsa-3072", "ecdsa-p256")
    assert cfg.mtas[0].smtp_host == "mx1.example.com" and cfg.mtas[0].smtp_port == 25
    assert cfg.settings.database == f"sqlite:///{tmp_path / 'state' / 'certmgr.db'}"


def test_unknown_key_in_mta(tmp_path: Path) -> None:
    err = error_for(tmp_path, good(tmp_path).replace('key = "rsa-2048"', 'key = "rsa-2048"\nkeytype = "x"'))
    assert err.table == "mta #1" and err.key == "keytype" and "unknown key" in str(err)
    assert err.line is not None and "keytype" in (tmp_path / "certmgr.toml").read_text().splitlines()[err.line - 1]


def test_unknown_key_in_certmgr_table(tmp_path: Path) -> None:
    err = error_for(tmp_path, good(tmp_path).replace("[certmgr]\n", "[certmgr]\nstatedir = 1\n"))
    assert err.table == "certmgr" and err.key == "statedir"


def test_unknown_top_level_table(tmp_path: Path) -> None:
    err = error_for(tmp_path, good(tmp_path) + "\n[issuers.x]\ntype='acme'\n")
    assert err.table == "issuers" and "unknown table" in str(err)


def test_duplicate_hostname(tmp_path: Path) -> None:
    text = good(tmp_path).replace('hostname = "mx2.example.com"', 'hostname = "MX1.example.com."')
    err = error_for(tmp_path, text)
    assert err.table == "mta #2" and err.key == "hostname" and "duplicate hostname mx1.example.com" in str(err)


@pytest.mark.parametrize(
    "hostname, fragment",
    [
        ("localhost", "not fully qualified"),
        ("*.example.com", "wildcard"),
        ("192.0.2.10", "IP address"),
        ("mx1..example.com", "empty label"),
        ("mx_1.example.com", "letters, digits"),
        ("-mx.example.com", "letters, digits"),
        ("a" * 64 + ".example.com", "longer than 63"),
        ("mx1.example.com;rm -rf /", "letters, digits"),
        ("$(reboot).example.com", "letters, digits"),
        ("mx1.example.com..", "more than one dot"),
    ],
)
def test_bad_hostnames(tmp_path: Path, hostname: str, fragment: str) -> None:
    err = error_for(tmp_path, good(tmp_path).replace('"mx1.example.com"', f'"{hostname}"', 1))
    assert err.key == "hostname" and fragment in str(err), str(err)


def test_idn_and_trailing_dot_normalised(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, good(tmp_path).replace('"mx1.example.com"', '"MX1.Bücher.example."', 1)))
    assert cfg.mtas[0].hostname == "mx1.xn--bcher-kva.example"


@pytest.mark.parametrize("key", ["rsa-1024", "ecdsa-p192", "dsa", "dsa-2048", "rsa-512"])
def test_weak_keys_refused(tmp_path: Path, key: str) -> None:
    err = error_for(tmp_path, good(tmp_path).replace('key = "rsa-2048"', f'key = "{key}"'))
    assert err.key == "key" and "weaker than certmgr allows" in str(err)
    assert "rsa-2048" in str(err), "the error lists what is allowed"


def test_unsupported_key(tmp_path: Path) -> None:
    err = error_for(tmp_path, good(tmp_path).replace('key = "rsa-2048"', 'key = "ed25519"'))
    assert "not a supported key type" in str(err)


def test_two_rsa_keys_refused(tmp_path: Path) -> None:
    err = error_for(tmp_path, good(tmp_path).replace('key = "rsa-2048"', 'key = ["rsa-2048", "rsa-4096"]'))
    assert "two RSA keys" in str(err)


def test_undefined_issuer(tmp_path: Path) -> None:
    err = error_for(tmp_path, good(tmp_path).replace('issuer = "le"', 'issuer = "letsencrypt"'))
    assert err.key == "issuer" and "[issuer.letsencrypt], which is not defined" in str(err)


def test_undefined_deploy_and_notify(tmp_path: Path) -> None:
    err = error_for(tmp_path, good(tmp_path).replace('issuer = "le"', 'issuer = "le"\ndeploy = ["edge"]'))
    assert err.key == "deploy" and "[deploy.edge]" in str(err)
    err = error_for(tmp_path, good(tmp_path).replace('issuer = "le"', 'issuer = "le"\nnotify = ["ops"]'))
    assert err.key == "notify" and "[notify.ops]" in str(err)


@pytest.mark.parametrize("key", ["eab_hmac_key", "password", "tsig_key", "token"])
def test_inline_secrets_refused(tmp_path: Path, key: str) -> None:
    err = error_for(tmp_path, good(tmp_path).replace('type = "manual"', f'type = "manual"\n{key} = "s3cret"'))
    assert err.table == "issuer.corp" and err.key == key and f"{key}_file" in str(err)


def test_inline_secret_in_nested_table(tmp_path: Path) -> None:
    text = good(tmp_path).replace('port = 5002 }', 'port = 5002, tsig_key = "abc" }')
    err = error_for(tmp_path, text)
    assert err.table == "issuer.le.challenge" and err.key == "tsig_key"


def test_database_password_refused(tmp_path: Path) -> None:
    text = good(tmp_path).replace("[certmgr]\n", '[certmgr]\ndatabase = "postgresql+psycopg://u:pw@db/certmgr"\n')
    assert "inline password" in str(error_for(tmp_path, text))


def test_wrong_types(tmp_path: Path) -> None:
    err = error_for(tmp_path, good(tmp_path).replace('names = ["mail.example.com"]', "names = 5"))
    assert err.key == "names"
    err = error_for(tmp_path, good(tmp_path).replace('hostname = "mx2.example.com"', "hostname = 7"))
    assert err.key == "hostname" and err.table == "mta #2"


def test_bad_toml_names_line(tmp_path: Path) -> None:
    err = error_for(tmp_path, good(tmp_path) + "\n[[mta]\n")
    assert "not valid TOML" in str(err) and err.line is not None


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_missing_type(tmp_path: Path) -> None:
    err = error_for(tmp_path, good(tmp_path).replace('type = "manual"\n', 'name = "x"\n'))
    assert err.table == "issuer.corp" and err.key == "type"


def test_validate_cli_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, good(tmp_path).replace('key = "rsa-2048"', 'key = "rsa-1024"'))
    r = subprocess.run([sys.executable, "-m", "certmgr", "-c", str(path), "validate"],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert str(path) in r.stderr and "[mta #1] key" in r.stderr
    assert not (tmp_path / "state").exists(), "validate must write nothing"


def test_validate_cli_reports_provider_option_errors(tmp_path: Path) -> None:
    path = write(tmp_path, good(tmp_path).replace("port = 5002 }", "port = 5002, colour = 1 }"))
    r = subprocess.run([sys.executable, "-m", "certmgr", "-c", str(path), "validate"],
                       capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert "colour" in r.stderr and str(path) in r.stderr


def test_resolver_setting(tmp_path: Path) -> None:
    text = good(tmp_path).replace("[certmgr]\n", '[certmgr]\nresolver = "127.0.0.1:5353"\n')
    cfg = load_config(write(tmp_path, text))
    assert cfg.settings.resolver == ("127.0.0.1", 5353)
    err = error_for(tmp_path, good(tmp_path).replace("[certmgr]\n", '[certmgr]\nresolver = "ns1;reboot"\n'))
    assert err.key == "resolver" and "host:port" in str(err)
