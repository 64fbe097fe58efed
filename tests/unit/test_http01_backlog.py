"""The standalone HTTP-01 listener takes the CA's validation connections for a whole batch of
certificates at once: with socketserver's backlog of 5, a connection beyond it waits a second
for the TCP retransmission, while the listener thread waits for the interpreter."""

from __future__ import annotations

import socket

from providers.challenges.http01 import _ChallengeServer

#: validations a CA may start at once for one renewal run (the default concurrency is 16)
AT_ONCE = 64


def test_the_listener_queues_a_batch_of_validation_connections() -> None:
    server = _ChallengeServer(("127.0.0.1", 0))  # listening, not accepting yet: a busy interpreter
    port = server.server_address[1]
    connected: list[socket.socket] = []
    try:
        for _ in range(AT_ONCE):
            # a connection the listen queue cannot hold is not set up within this time (the
            # client's SYN is retried after a second)
            connected.append(socket.create_connection(("127.0.0.1", port), timeout=0.5))
    finally:
        for s in connected:
            s.close()
        server.server_close()
    assert len(connected) == AT_ONCE
