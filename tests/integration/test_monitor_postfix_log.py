"""The Postfix log parser on what real Postfix instances log for real mail.

swaks sends into a private Postfix with and without STARTTLS; that Postfix
relays to receivers at each trust level (Verified, Trusted, Untrusted) and to
one without STARTTLS.  Every session the test caused must come out of the
logs with the right direction, domain, TLS use, level, protocol and cipher.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from certmgr.monitor.postfix_log import PostfixLogParser, Session
from tests.peers.mailflow import DOMAINS, EXPECTED_LEVEL, MailFlow
from tests.peers.postfix import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailFlow]:
    f = MailFlow(tmp_path_factory.mktemp("mailflow")).start()
    yield f
    f.stop()


def parse(path: object) -> tuple[list[Session], int]:
    parser = PostfixLogParser(year=datetime.now(UTC).year)
    with open(str(path)) as f:
        sessions = [s for line in f if (s := parser.feed(line)) is not None]
    return sessions, parser.unparsed


def test_every_session_with_its_tls_facts(flow: MailFlow) -> None:
    sent = [(d, starttls) for d in DOMAINS for starttls in (True, False)]
    for domain, starttls in sent:
        flow.send(domain, starttls=starttls, rcpts=2)  # two recipients: still one session each way
    flow.wait_delivered(2 * len(sent))

    sessions, unparsed = parse(flow.mx.log)
    assert unparsed == 0
    inbound = [s for s in sessions if s.direction == "inbound"]
    outbound = [s for s in sessions if s.direction == "outbound"]

    # inbound: one session per swaks run, TLS exactly when swaks used STARTTLS
    assert Counter(s.tls for s in inbound) == Counter(t for _, t in sent)
    for s in inbound:
        assert (s.host, s.address, s.domain) == ("localhost", "127.0.0.1", "localhost")
        if s.tls:
            assert s.level == "Anonymous" and s.protocol.startswith("TLSv1.") and s.cipher.startswith("TLS_")
        else:
            assert (s.level, s.protocol, s.cipher) == ("none", "", "")

    # outbound: one session per message over TLS (Postfix does not cache TLS connections),
    # at the level the relay's policy gives
    tls_sent = Counter(d for d, _ in sent if d != "plain.test")
    assert Counter(s.domain for s in outbound if s.domain != "plain.test") == tls_sent
    for s in outbound:
        assert s.level == EXPECTED_LEVEL[s.domain], s
        assert s.tls == (s.domain != "plain.test")
        assert s.address == "127.0.0.1"
        assert (s.protocol != "") == s.tls

    # the receivers saw the other end of each outbound session: inbound, Anonymous or plaintext
    plain_sent = sum(1 for s in outbound if s.domain == "plain.test")
    # a receiver logs a session when the sender closes it: a connection the sender cached is
    # closed (and logged there) only when it leaves the cache, a moment after the sender logged it
    wait_until(lambda: len(parse(flow.plain.log)[0]) >= plain_sent, what="the plaintext receiver's sessions")
    rx_tls, _ = parse(flow.tls.log)
    rx_plain, _ = parse(flow.plain.log)
    assert Counter(s.level for s in rx_tls) == Counter({"Anonymous": 6})
    assert rx_plain and {s.level for s in rx_plain} == {"none"}
    # a plaintext connection is cached and reused (conn_use=2): one session on both ends
    assert len(rx_plain) == plain_sent
