"""The [monitor] table: the documented example loads; each mistake names its key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from certmgr.errors import ConfigError
from certmgr.monitor.config import parse_monitor

EXAMPLE = """
[monitor]
logs   = [{ type = "postfix", path = "/var/log/mail.log" }]
tlsrpt = { maildir = "/var/mail/tlsrpt" }
report = { notify = ["mailops"], every = "weekly" }
alerts = { tls_share = 0.95, min_sessions = 50, tlsrpt_failures = 10 }
"""


def test_the_example_loads() -> None:
    c = parse_monitor(tomllib.loads(EXAMPLE)["monitor"], file="certmgr.toml")
    assert [(s.type, s.path) for s in c.logs] == [("postfix", Path("/var/log/mail.log"))]
    assert c.tlsrpt_maildir == Path("/var/mail/tlsrpt")
    assert (c.report_notify, c.report_every) == (("mailops",), "weekly")
    assert (c.thresholds.tls_share, c.thresholds.min_sessions, c.thresholds.tlsrpt_failures) == (0.95, 50, 10)


def test_a_journal_source(tmp_path: Path) -> None:
    c = parse_monitor(tomllib.loads(f"""logs = [{{ type = "postfix", journal = "postfix@-.service" }},
        {{ type = "exim", journal = "exim4.service", directory = "{tmp_path}" }}]"""))
    assert [(s.type, s.journal, s.directory, s.path, s.name) for s in c.logs] == [
        ("postfix", "postfix@-.service", None, None, "journal:postfix@-.service"),
        ("exim", "exim4.service", tmp_path, None, f"journal:{tmp_path}:exim4.service")]


@pytest.mark.parametrize(("toml", "where"), [
    ('logs = [{ type = "sendmail", path = "/x" }]', "[monitor] logs[0].type: type must be one of"),
    ('logs = [{ type = "postfix", path = "mail.log" }]', "[monitor] logs[0].path: path must be an absolute"),
    ('logs = [{ type = "postfix", journal = "postfix.service", path = "/x" }]',
     "[monitor] logs[0].journal: give either path (a log file) or journal"),
    ('logs = [{ type = "postfix", journal = "postfix service" }]',
     "[monitor] logs[0].journal: journal must be a systemd unit name"),
    ('logs = [{ type = "postfix", journal = "postfix.service", directory = "/nonexistent/journal" }]',
     "[monitor] logs[0].directory: directory must be an existing absolute directory"),
    ('logs = [{ type = "postfix", path = "/x", directory = "/var" }]',
     "[monitor] logs[0].directory: directory is where journal files are"),
    ('logs = { type = "postfix" }', "[monitor] logs: expected a list"),
    ('tlsrpt = { maildir = "/m", listn = "x" }', "[monitor] tlsrpt: unknown key(s) listn"),
    ('report = { every = "hourly" }', "[monitor] report.every: every must be one of daily, weekly, off"),
    ('report = { notify = "mailops" }', "[monitor] report.notify: notify must be a list"),
    ("alerts = { tls_share = 90 }", "[monitor] alerts.tls_share: tls_share must be a number from 0 to 1"),
    ("alerts = { min_sessions = -1 }", "[monitor] alerts.min_sessions"),
    ("colour = 1", "[monitor]: unknown key(s) colour"),
    ('tlsrpt = { listen = "127.0.0.1" }', "[monitor] tlsrpt.listen: listen must be address:port"),
    ('tlsrpt = { listen = "127.0.0.1:9421" }', "[monitor] tlsrpt.cert: the HTTPS endpoint needs cert"),
    ('tlsrpt = { listen = "127.0.0.1:9421", cert = "/c.pem", key = "k.pem" }', "[monitor] tlsrpt.key:"),
    ('tlsrpt = { maildir = "/m", cert = "/c.pem" }', "[monitor] tlsrpt.listen: cert and key are for"),
    ("tlsrpt = {}", "[monitor] tlsrpt: give maildir, listen"),
])
def test_mistakes_name_the_key(toml: str, where: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_monitor(tomllib.loads(toml), file="certmgr.toml")
    assert e.value.exit_code == 2
    assert f"certmgr.toml {where}" in str(e.value)
