"""Edge cases of the Postfix log parser that real traffic here does not produce
(the sessions themselves are proven on real logs in tests/integration)."""

from __future__ import annotations

from datetime import UTC, datetime

from certmgr.monitor.postfix_log import PostfixLogParser

TLS_IN = ("Verified TLS connection established from a.example[192.0.2.1]: TLSv1.2 with cipher "
          "ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)")


def test_iso_timestamps_unknown_names_and_unparsed_lines() -> None:
    p = PostfixLogParser(year=2026)
    lines = [
        "2026-11-30T03:58:49.123456+01:00 mx postfix/smtpd[7]: connect from unknown[192.0.2.1]",
        "garbage that is no syslog line",
        "2026-11-30T03:58:49+01:00 mx dovecot[9]: imap-login: Login",
        "2026-11-30T03:58:50+01:00 mx postfix/smtpd[7]: disconnect from unknown[192.0.2.1] ehlo=1 quit=1 commands=2",
    ]
    out = [s for line in lines if (s := p.feed(line))]
    assert p.unparsed == 1
    (s,) = out
    assert (s.domain, s.tls, s.level) == ("192.0.2.1", False, "none")
    assert s.when == datetime(2026, 11, 30, 2, 58, 50, tzinfo=UTC)


def test_a_port_probe_is_no_session() -> None:
    p = PostfixLogParser(year=2026)
    assert p.feed("Nov 30 03:58:48 mx postfix/smtpd[1]: connect from localhost[127.0.0.1]") is None
    assert p.feed("Nov 30 03:58:48 mx postfix/smtpd[1]: disconnect from localhost[127.0.0.1] commands=0/0") is None


def test_open_session_survives_a_restart() -> None:
    first = PostfixLogParser(year=2026)
    first.feed("Nov 30 03:58:48 mx postfix/smtpd[1]: connect from a.example[192.0.2.1]")
    first.feed(f"Nov 30 03:58:48 mx postfix/smtpd[1]: {TLS_IN}")
    second = PostfixLogParser(year=2000)
    second.restore(first.state())
    s = second.feed("Nov 30 03:58:49 mx postfix/smtpd[1]: disconnect from a.example[192.0.2.1] ehlo=2 "
                    "starttls=1 quit=1 commands=4")
    assert s is not None
    assert (s.domain, s.level, s.protocol, s.when.year) == ("a.example", "Verified", "TLSv1.2", 2026)


def test_reused_connection_is_the_same_session() -> None:
    p = PostfixLogParser(year=2026)
    a = p.feed("Nov 30 03:58:49 mx postfix/smtp[5]: A1: to=<u@plain.test>, relay=rx[192.0.2.9]:25, "
               "delay=0.01, dsn=2.0.0, status=sent (250 ok)")
    b = p.feed("Nov 30 03:58:50 mx postfix/smtp[6]: B2: to=<u@plain.test>, relay=rx[192.0.2.9]:25, "
               "conn_use=2, delay=0.01, dsn=2.0.0, status=sent (250 ok)")
    assert a is not None and not a.tls and b is None


def test_client_domain() -> None:
    from certmgr.monitor.postfix_log import client_domain

    assert client_domain("Mail-Out12.Sender.Example.") == "sender.example"
    assert client_domain("mx.bigcorp.co.uk") == "bigcorp.co.uk"
    assert client_domain("localhost") == "localhost"
    assert client_domain("192.0.2.1") == "192.0.2.1"
    assert client_domain("2001:db8::1") == "2001:db8::1"
