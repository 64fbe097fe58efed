"""`[dns.NAME]`, per-MTA `dane = {...}` and `[mta_sts."domain"]` read from certmgr.toml and checked
by `certmgr validate` through the provider registry: errors name file, line, table and key, exit 2."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from certmgr.config.load import load_config
from certmgr.errors import ConfigError, ConfigErrors
from certmgr.registry import Providers
from tests.e2e.conftest import Cli

HEAD = """[certmgr]
state_dir = "{state}"

[issuer.le]
type = "manual"

[deploy.web]
type = "webroot"
webroot = "{state}/www"
cert_file = "{state}/mta-sts.crt"
key_file = "{state}/mta-sts.key"
reload = ["/bin/true"]

[dns.corp]
type = "rfc2136"
server = "127.0.0.1:5353"
zone = "example.com"
tsig_key_file = "{key}"
"""

MTA = """
[[mta]]
hostname = "mx1.example.com"
issuer = "le"
dane = {dane}
"""

STS = """
[mta_sts."example.com"]
mode = "enforce"
max_age = 604800
dns = "corp"
web = "web"
issuer = "le"
"""


def write(tmp_path: Path, text: str) -> Path:
    key = tmp_path / "tsig.key"
    secret = base64.b64encode(b"k" * 32).decode()
    key.write_text(f'key "certmgr" {{\n  algorithm hmac-sha256;\n  secret "{secret}";\n}};\n')
    p = tmp_path / "certmgr.toml"
    p.write_text(text.replace("{state}", str(tmp_path / "state")).replace("{key}", str(key)))
    return p


def test_dane_table_dns_zone_and_mta_sts_load_and_validate(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + MTA.replace("{dane}", '{ publish = "corp", usage = "3 1 1 + 2 1 1" }') + STS
                 + MTA.replace("mx1", "mx2").replace("{dane}", "false"))
    cfg = load_config(path)
    mx1, mx2 = cfg.mtas
    assert mx1.dane and mx1.dane_publish is not None
    assert mx1.dane_publish.publish == "corp" and mx1.dane_publish.usages == ("3 1 1", "2 1 1")
    assert not mx2.dane and mx2.dane_publish is None
    assert cfg.mta_sts["example.com"].mode == "enforce" and cfg.mta_sts["example.com"].dns == "corp"
    providers = Providers(cfg)
    try:
        providers.build_all()
        assert providers.dns("corp").zone == "example.com"
    finally:
        providers.close()
    r = Cli(path)("validate")
    assert "OK" in r.stdout


def test_dane_true_keeps_the_guard_only(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, HEAD + MTA.replace("{dane}", "true")))
    assert cfg.mtas[0].dane and cfg.mtas[0].dane_publish is None


def line_of(text: str, needle: str) -> int:
    return next(i for i, ln in enumerate(text.replace("{key}", "k").splitlines(), 1) if ln.startswith(needle))


@pytest.mark.parametrize(("text", "table", "key", "needle", "message"), [
    (HEAD + MTA.replace("{dane}", '{ publish = "nowhere" }'), "mta #1", "dane.publish", "dane", "[dns.nowhere]"),
    (HEAD + MTA.replace("{dane}", '{ publish = "corp", usage = "1 1 1" }'), "mta #1", "dane.usage", "dane",
     "usage must be"),
    (HEAD + MTA.replace("{dane}", '{ publish = "corp", pubish = "x" }'), "mta #1", "dane.pubish", "dane",
     "unknown key"),
    (HEAD + MTA.replace("{dane}", '"yes"'), "mta #1", "dane", "dane", "must be"),
    (HEAD + STS.replace('"enforce"', '"strict"'), 'mta_sts."example.com"', "mode", "mode", "must be one of enforce"),
    (HEAD + STS.replace('web = "web"', 'web = "nginx"'), 'mta_sts."example.com"', "web", "web =", "[deploy.nginx]"),
    (HEAD + STS.replace('dns = "corp"', 'dns = "other"'), 'mta_sts."example.com"', "dns", "dns =", "[dns.other]"),
])
def test_bad_values_name_file_line_table_and_key(tmp_path: Path, text: str, table: str, key: str, needle: str,
                                                 message: str) -> None:
    path = write(tmp_path, text)
    line = line_of(text, needle)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert (err.file, err.table, err.key, err.line) == (str(path), table, key, line), err
    assert message in err.message
    r = Cli(path)("validate", check=2)
    assert f"{path}:{line}" in r.stderr and message in r.stderr, r.stderr


def test_bad_dns_table_is_refused_by_validate_naming_its_key(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD.replace('zone = "example.com"', 'zone = "example.com"\nport = 53'))
    r = Cli(path)("validate", check=2)
    assert "[dns.corp]" in r.stderr and "port" in r.stderr, r.stderr
    path = write(tmp_path, HEAD.replace('type = "rfc2136"', 'type = "route53"'))
    r = Cli(path)("validate", check=2)
    assert "[dns.corp]" in r.stderr and "route53" in r.stderr, r.stderr


def test_every_dane_and_mta_sts_error_comes_out_in_one_run(tmp_path: Path) -> None:
    text = (HEAD + MTA.replace("{dane}", '{ publish = "nowhere" }')
            + STS.replace('"enforce"', '"strict"') + MTA.replace("mx1", "mx2").replace("{dane}", '"yes"'))
    path = write(tmp_path, text)
    with pytest.raises(ConfigErrors) as info:
        load_config(path)
    found = {(e.table, e.key, e.line) for e in info.value.errors}
    assert found == {("mta #1", "dane.publish", line_of(text, 'dane = { publish = "nowhere"')),
                     ('mta_sts."example.com"', "mode", line_of(text, 'mode = "strict"')),
                     ("mta #2", "dane", line_of(text, 'dane = "yes"'))}, info.value


def test_dns_zone_from_an_included_file_and_dane_from_defaults(tmp_path: Path) -> None:
    main, _, zone = HEAD.partition("[dns.corp]")
    (tmp_path / "conf.d").mkdir()
    write(tmp_path, "[dns.corp]" + zone)
    (tmp_path / "certmgr.toml").rename(tmp_path / "conf.d" / "zones.toml")
    text = (main.replace("[certmgr]\n", '[certmgr]\ninclude = ["conf.d/*.toml"]\n')
            + '\n[defaults]\ndane = { publish = "corp" }\n'
            + MTA.replace("dane = {dane}\n", "") + STS)
    cfg = load_config(write(tmp_path, text))
    (mx1,) = cfg.mtas
    assert set(cfg.dns) == {"corp"} and cfg.dns["corp"].file == str(tmp_path / "conf.d" / "zones.toml")
    assert mx1.dane and mx1.dane_publish is not None and mx1.dane_publish.publish == "corp"
    providers = Providers(cfg)
    try:
        providers.build_all()
        assert providers.dns("corp").zone == "example.com"
    finally:
        providers.close()


def test_mta_sts_is_refused_in_an_included_file(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "sts.toml").write_text(STS)
    text = HEAD.replace("[certmgr]\n", '[certmgr]\ninclude = ["conf.d/*.toml"]\n') + MTA.replace("{dane}", "true")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert info.value.table == "mta_sts" and "only in the main config file" in info.value.message


def test_a_web_target_that_serves_no_documents_is_refused_by_validate(tmp_path: Path) -> None:
    text = (HEAD.replace('type = "webroot"\nwebroot = "{state}/www"\ncert_file = "{state}/mta-sts.crt"\n'
                         'key_file = "{state}/mta-sts.key"\nreload = ["/bin/true"]',
                         'type = "exec"\ncommand = ["/bin/true"]\ncert_dir = "{state}"') + STS)
    r = Cli(write(tmp_path, text))("validate", check=2)
    assert 'certmgr.toml:' in r.stderr and '[mta_sts."example.com"] web: [deploy.web] cannot serve the MTA-STS ' \
        'policy file: its type \'exec\' installs no documents' in r.stderr, r.stderr


@pytest.mark.parametrize(("make", "words"), [
    (lambda p: p.mkdir(), "cannot read {key}: Is a directory; make it readable"),
    (lambda p: p.write_bytes(b'key "certmgr" {\n  secret "\xff\xfe";\n};\n'), "{key} is not a text key file"),
])
def test_a_tsig_key_file_that_cannot_be_read_says_so_without_a_raw_errno(tmp_path: Path, make: object,
                                                                         words: str) -> None:
    path = write(tmp_path, HEAD + MTA.replace("{dane}", '{ publish = "corp" }'))
    key = tmp_path / "tsig.key"
    key.unlink()
    make(key)  # type: ignore[operator]
    r = Cli(path)("validate", check=2)
    assert f"[dns.corp] tsig_key_file: {words.format(key=key)}" in r.stderr, r.stderr
    assert "Errno" not in r.stderr


@pytest.mark.parametrize(("text", "key", "close"), [
    (MTA.replace("{dane}", '{ publish = "corp", usgae = "3 1 1" }'), "dane.usgae", "usage"),
    (STS.replace("max_age", "maxage"), "maxage", "max_age"),
])
def test_a_misspelt_dane_or_mta_sts_key_gets_the_closest_allowed_one(tmp_path: Path, text: str, key: str,
                                                                     close: str) -> None:
    r = Cli(write(tmp_path, HEAD + text))("validate", check=2)
    assert f"{key}: unknown key; did you mean {close}? (allowed here: " in r.stderr, r.stderr
