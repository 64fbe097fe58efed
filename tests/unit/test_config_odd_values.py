"""Odd values a new admin may write: each one that cannot work fails `certmgr validate` with file,
line, table, key and what to do (exit 2, no traceback); each one that validates works."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from certmgr.config.load import load_config
from certmgr.errors import ConfigError, UsageError
from certmgr.monitor.commands import parse_since
from providers.challenges.dns01 import parse_server
from tests.e2e.conftest import Cli
from tests.unit.test_config_dns import HEAD, MTA, STS, write


def _validate(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    return Cli(write(tmp_path, text))("validate", check=None)


def test_a_boolean_for_a_number_says_which_type_is_wanted(tmp_path: Path) -> None:
    r = _validate(tmp_path, HEAD + "\n[daemon]\npartner_interval = true\n")
    assert r.returncode == 2
    assert "[daemon] partner_interval: must be int, got True" in r.stderr


def test_a_late_after_the_clock_cannot_hold_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + MTA.replace("{dane}", '{ publish = "corp", late_after = 9223372036854775807 }'))
    with pytest.raises(ConfigError, match="from 1 to 31536000") as e:
        load_config(path)
    assert e.value.key == "dane.late_after" and e.value.line is not None


@pytest.mark.parametrize("value", ["ns1.example.com:53", "not a server", "ns1.example.com"])
def test_a_dns_server_written_as_a_name_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="write the server's address") as e:
        parse_server(value, table="dns.corp", key="nameservers")
    assert e.value.key == "nameservers"


def test_dns_server_addresses_are_accepted() -> None:
    assert parse_server("192.0.2.53") == ("192.0.2.53", 53)
    assert parse_server("[2001:db8::53]:5353") == ("2001:db8::53", 5353)


def test_nameservers_that_are_not_addresses_fail_validate_without_a_traceback(tmp_path: Path) -> None:
    text = HEAD.replace('zone = "example.com"', 'zone = "example.com"\nnameservers = ["not a server"]')
    r = _validate(tmp_path, text + MTA.replace("{dane}", '{ publish = "corp" }'))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "[dns.corp] nameservers: must be an IP address" in r.stderr and "certmgr.toml:" in r.stderr


def test_a_zone_that_does_not_hold_the_tlsa_owner_fails_validate(tmp_path: Path) -> None:
    text = HEAD.replace('zone = "example.com"', 'zone = "other.org"')
    r = _validate(tmp_path, text + MTA.replace("{dane}", '{ publish = "corp" }'))
    assert r.returncode == 2
    assert "[dns.corp] zone: zone 'other.org' does not hold _25._tcp.mx1.example.com" in r.stderr
    assert "certmgr.toml:" in r.stderr


def test_a_zone_that_does_not_hold_the_mta_sts_record_fails_validate(tmp_path: Path) -> None:
    text = HEAD.replace('zone = "example.com"', 'zone = "other.org"')
    r = _validate(tmp_path, text + STS)
    assert r.returncode == 2
    assert "does not hold _mta-sts.example.com" in r.stderr


def test_a_zone_written_in_upper_case_with_a_dot_holds_its_names(tmp_path: Path) -> None:
    text = HEAD.replace('zone = "example.com"', 'zone = "EXAMPLE.com."\nnameservers = ["127.0.0.1:9"]')
    r = _validate(tmp_path, text + MTA.replace("{dane}", '{ publish = "corp" }'))
    assert r.returncode == 0, r.stderr


def test_one_domain_written_twice_as_mta_sts_tables_is_refused(tmp_path: Path) -> None:
    twice = STS + STS.replace('[mta_sts."example.com"]', '[mta_sts."EXAMPLE.COM."]')
    r = _validate(tmp_path, HEAD + twice)
    assert r.returncode == 2
    assert '[mta_sts."EXAMPLE.COM."]: example.com is configured twice (also [mta_sts."example.com"])' in r.stderr


def test_two_domains_on_one_web_target_are_refused(tmp_path: Path) -> None:
    net = STS.replace('"example.com"', '"example.net"').replace('dns = "corp"', 'dns = "net"')
    zone = '\n[dns.net]\ntype = "rfc2136"\nserver = "127.0.0.1:5353"\nzone = "example.net"\ntsig_key_file = "{key}"\n'
    r = _validate(tmp_path, HEAD + zone + STS + net)
    assert r.returncode == 2
    assert ('[mta_sts."example.net"] web: [deploy.web] already serves the policy and certificate of example.com'
            in r.stderr)


@pytest.mark.parametrize("pattern", ["*.*.example.com", "mx*.example.com", "mx .example.com"])
def test_an_mx_pattern_senders_cannot_match_is_refused(tmp_path: Path, pattern: str) -> None:
    r = _validate(tmp_path, HEAD + STS + f'mx = ["{pattern}"]\n')
    assert r.returncode == 2
    assert f"[mta_sts.\"example.com\"] mx: {pattern!r} is not an MX name or a *.domain pattern" in r.stderr


def test_mx_patterns_a_sender_matches_validate(tmp_path: Path) -> None:
    r = _validate(tmp_path, HEAD + STS + 'mx = ["*.example.com", "MX1.Example.com."]\n')
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(("key_file", "message"), [
    ("{state}/mta-sts.crt", "key_file: is also cert_file"),
    ("{state}/www/mta-sts.key", "is inside the webroot"),
    ("{state}/www/.well-known/k.pem", "is inside the webroot"),
])
def test_a_webroot_key_that_would_be_overwritten_or_served_is_refused(tmp_path: Path, key_file: str,
                                                                       message: str) -> None:
    text = HEAD.replace('key_file = "{state}/mta-sts.key"', f'key_file = "{key_file}"')
    r = _validate(tmp_path, text + STS)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"[deploy.web] {message}" in r.stderr if message.startswith("key_file") else message in r.stderr
    assert "certmgr.toml:" in r.stderr


def test_a_key_beside_a_webroot_of_a_similar_name_validates(tmp_path: Path) -> None:
    text = HEAD.replace('key_file = "{state}/mta-sts.key"', 'key_file = "{state}/www-keys/k.pem"')
    r = _validate(tmp_path, text + STS)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(("monitor", "message"), [
    ('logs = [{ type = "postfix", path = "/nonexistent/mail.log" }]',
     "[monitor] logs: /nonexistent/mail.log does not exist; certmgr collect reads it as this user"),
    ('logs = [{ type = "postfix", path = "{state}" }]', "is a directory"),
    ('tlsrpt = { maildir = "/nonexistent/tlsrpt" }', "[monitor] tlsrpt: maildir /nonexistent/tlsrpt does not exist"),
    ('tlsrpt = { listen = "127.0.0.1:9421", cert = "/nonexistent/c.pem", key = "{key}" }',
     "[monitor] tlsrpt: cert /nonexistent/c.pem does not exist; the daemon could not start"),
    ('tlsrpt = { listen = "127.0.0.1:9420", cert = "{key}", key = "{key}" }',
     "[monitor] tlsrpt: listen 127.0.0.1:9420 is also the daemon's metrics_listen"),
])
def test_monitor_files_and_ports_that_cannot_work_fail_validate(tmp_path: Path, monitor: str, message: str) -> None:
    (tmp_path / "state").mkdir()
    r = _validate(tmp_path, HEAD + f"\n[monitor]\n{monitor}\n")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert message in r.stderr and "certmgr.toml:" in r.stderr


def test_a_readable_log_and_maildir_validate(tmp_path: Path) -> None:
    for sub in ("new", "cur", "tmp"):
        (tmp_path / "md" / sub).mkdir(parents=True)
    (tmp_path / "mail.log").write_text("")
    r = _validate(tmp_path, HEAD + f'\n[monitor]\nlogs = [{{ type = "postfix", path = "{tmp_path}/mail.log" }}]\n'
                                    f'tlsrpt = {{ maildir = "{tmp_path}/md" }}\n')
    assert r.returncode == 0, r.stderr


def test_renew_before_zero_is_refused_with_a_range_that_excludes_it(tmp_path: Path) -> None:
    r = _validate(tmp_path, HEAD + MTA.replace("{dane}", "false") + "renew_before = 0\n")
    assert r.returncode == 2
    assert "renew_before: must be a number of days between 0 and 365 (more than 0), got 0" in r.stderr


@pytest.mark.parametrize("policy_map", ["/etc/postfix/certmgr/tls policy", "/etc/postfix/certmgr/a,b"])
def test_a_postfix_policy_map_path_postfix_would_split_is_refused(tmp_path: Path, policy_map: str) -> None:
    target = ('\n[deploy.out]\ntype = "postfix"\nconfig_dir = "/etc/postfix"\n'
              f'tls_policy_map = "{policy_map}"\n')
    r = _validate(tmp_path, HEAD + target)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "[deploy.out] tls_policy_map: " in r.stderr and "list separator in smtp_tls_policy_maps" in r.stderr


@pytest.mark.parametrize("since", ["99999999d", "9999999999999999999w", "5300000w"])
def test_a_report_period_beyond_the_clock_is_a_usage_error(since: str) -> None:
    with pytest.raises(UsageError, match="at most 3650d") as e:
        parse_since(since)
    assert e.value.exit_code == 2


def test_a_ten_year_report_period_is_accepted() -> None:
    assert parse_since("3650d").days == 3650 and parse_since("520w").days == 3640


@pytest.mark.parametrize("source", ["notanip", "", "mx1.example.com"])
def test_audit_source_that_is_not_an_address_is_a_usage_error(tmp_path: Path, source: str) -> None:
    r = Cli(write(tmp_path, HEAD))("audit", "--source", source, check=None)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--source: " in r.stderr and "is not an IP address" in r.stderr


def test_an_idn_smtp_target_is_taken_as_its_a_label(tmp_path: Path) -> None:
    mta = '\n[[mta]]\nhostname = "MX1.bücher.example."\nissuer = "le"\nsmtp = "MX1.Bücher.example.:2525"\n'
    [m] = load_config(write(tmp_path, HEAD + mta)).mtas
    assert (m.hostname, m.smtp_host, m.smtp_port) == ("mx1.xn--bcher-kva.example", "mx1.xn--bcher-kva.example", 2525)


def test_a_bad_idn_smtp_target_names_the_key(tmp_path: Path) -> None:
    mta = '\n[[mta]]\nhostname = "mx1.bücher.example"\nissuer = "le"\nsmtp = "mx1.bü cher.example:25"\n'
    r = _validate(tmp_path, HEAD + mta)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "[mta #1] smtp: " in r.stderr and "certmgr.toml:" in r.stderr


def test_an_mta_sts_table_without_its_domain_says_how_to_write_it(tmp_path: Path) -> None:
    r = _validate(tmp_path, HEAD + '\n[mta_sts]\nmode = "enforce"\n')
    assert r.returncode == 2
    assert ('certmgr.toml:21 [mta_sts] mode: is not a table: write one table per domain, like '
            '[mta_sts."example.com"]') in r.stderr


def test_a_partner_on_an_exec_target_reads_as_english(tmp_path: Path) -> None:
    text = HEAD + '\n[deploy.hook]\ntype = "exec"\ncommand = ["/bin/true"]\n\n[[partner]]\ndomain = "bank.example"\n' \
                  'deploy = ["hook"]\n'
    r = _validate(tmp_path, text)
    assert r.returncode == 2 and "[deploy.hook] is an exec deployer; the TLS policy for partners" in r.stderr
