"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.smtpd import SmtpServer


@pytest.fixture
def smtpd(tmp_path: Path) -> Iterator[SmtpServer]:
    """A real SMTP server (STARTTLS, no AUTH), the mailbox of the notifier; stopped after the test."""
    with SmtpServer(tmp_path) as server:
        yield server
