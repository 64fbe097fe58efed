"""Exim log variants the real-Exim test does not produce: time zones, reverse
names, DANE, unverified client certificates, local submissions."""

from __future__ import annotations

from datetime import UTC, datetime

from certmgr.monitor.exim_log import EximLogParser

X = "X=TLS1.2:ECDHE-RSA-AES256-GCM-SHA384:256"


def feed(line: str) -> tuple[str, str, str, str, datetime] | None:
    s = EximLogParser(2026).feed(line)
    return None if s is None else (s.direction, s.domain, s.level, s.protocol, s.when)


def test_variants() -> None:
    t = datetime(2026, 11, 30, 3, 9, 54, tzinfo=UTC)
    assert feed(f"2026-11-30 04:09:54 +0100 [77] 1a-2b-3c <= s@x H=mail.a.example (helo.a) [192.0.2.1] P=esmtps {X} "
                'CV=no DN="CN=client" S=1') == ("inbound", "a.example", "Untrusted", "TLSv1.2", t)
    trusted = feed(f"2026-11-30 03:09:54 1a-2b-3c <= s@x H=(helo.a) [192.0.2.1] P=esmtps {X} CV=yes S=1")
    assert trusted is not None and trusted[2] == "Trusted"
    dane = feed(f"2026-11-30 03:09:54 1a-2b-3c => u@B.example R=dnslookup T=remote_smtp H=mx.b.example "
                f"[192.0.2.2] {X} CV=dane C=\"250 ok\"")
    assert dane is not None and dane[:3] == ("outbound", "b.example", "Verified")
    assert feed("2026-11-30 03:09:54 1a-2b-3c <= root@x U=root P=local S=1") is None  # not SMTP
    assert feed("2026-11-30 03:09:54 1a-2b-3c -> v@b.example R=r T=t H=mx [192.0.2.2] C=\"250\"") is None
    p = EximLogParser(2026)
    p.feed("not an exim line")
    p.feed("2026-11-30 03:09:54 Start queue run: pid=1 -qff")
    assert p.unparsed == 1
