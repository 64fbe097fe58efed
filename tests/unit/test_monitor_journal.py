"""Journal entries as the syslog lines the parsers read (journalctl -o json fields)."""

from __future__ import annotations

from pathlib import Path

from certmgr.monitor.exim_log import EximLogParser
from certmgr.monitor.journal import journal_command, syslog_line
from certmgr.monitor.postfix_log import PostfixLogParser

T = "1796019674693699"  # 2026-11-30T06:21:14.693699Z


def test_postfix_entry_becomes_its_syslog_line() -> None:
    p = PostfixLogParser(2026)
    base = {"__REALTIME_TIMESTAMP": T, "_HOSTNAME": "mx", "SYSLOG_IDENTIFIER": "postfix/smtpd", "_PID": "77"}
    lines = [syslog_line({**base, "MESSAGE": m}, "postfix") for m in (
        "connect from c.example.org[192.0.2.1]",
        "Anonymous TLS connection established from c.example.org[192.0.2.1]: TLSv1.3 with cipher X (256/256 bits)",
        "disconnect from c.example.org[192.0.2.1] ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 commands=7")]
    assert lines[0] == "2026-11-30T06:21:14+00:00 mx postfix/smtpd[77]: connect from c.example.org[192.0.2.1]"
    sessions = [s for line in lines if line and (s := p.feed(line))]
    assert [(s.direction, s.domain, s.level, s.protocol) for s in sessions] == [
        ("inbound", "example.org", "Anonymous", "TLSv1.3")]
    assert p.unparsed == 0


def test_exim_entry_and_odd_fields() -> None:
    msg = ("1xXsi9-00037C-2J <= s@a.test H=(client.example) [127.0.0.1] P=esmtps "
           "X=TLS1.3:ECDHE_X25519__RSA_PSS_RSAE_SHA256__AES_256_GCM:256 CV=no S=488")
    line = syslog_line({"__REALTIME_TIMESTAMP": T, "MESSAGE": msg}, "exim")
    assert line == f"2026-11-30 06:21:14 {msg}"
    s = EximLogParser(2026).feed(line)
    assert s is not None and (s.direction, s.protocol) == ("inbound", "TLSv1.3")
    # a message that is not UTF-8 comes as a list of byte values; no message or time: no line
    odd = syslog_line({"__REALTIME_TIMESTAMP": T, "MESSAGE": [104, 105, 255], "SYSLOG_PID": "9"}, "postfix")
    assert odd == "2026-11-30T06:21:14+00:00 - -[9]: hi\ufffd"
    assert syslog_line({"__REALTIME_TIMESTAMP": T}, "postfix") is None
    assert syslog_line({"MESSAGE": "x"}, "postfix") is None


def test_journalctl_command() -> None:
    assert journal_command("postfix@-.service", directory=None, cursor=None) == [
        "journalctl", "--output=json", "--no-pager", "--quiet", "--unit=postfix@-.service"]
    assert journal_command("p", directory=Path("/j"), cursor="s=1")[-2:] == ["--directory=/j", "--after-cursor=s=1"]
