"""The ACME issuer's shared setup (directory, account) is done by the first renewal worker that
issues, before it makes its key, while the others make theirs: not after the first key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from certmgr.config.load import load_config
from certmgr.interfaces import IssueContext, Preparing
from certmgr.lifecycle.issue import account_context, prepare_ahead
from certmgr.runtime import Runtime
from tests.integration.test_crash_resume import mta_blocks, write_config
from tests.peers.pebble import Pebble, running_pebble

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    with running_pebble(tmp_path_factory.mktemp("pebble")) as p:
        yield p


def test_the_first_worker_registers_the_account_once(tmp_path: Path, pebble: Pebble,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_config(tmp_path, pebble, mta_blocks(1, prefix="prep"))
    with Runtime(load_config(config)) as rt:
        issuer = rt.providers.issuer("pebble")
        assert isinstance(issuer, Preparing)
        assert rt.load_account("pebble") is None
        calls: list[str] = []
        real = issuer.prepare

        def counted(ctx: IssueContext) -> None:
            calls.append(ctx.hostname)
            real(ctx)

        monkeypatch.setattr(issuer, "prepare", counted)
        prepare_ahead(issuer, account_context(rt, "pebble", "prep0.example.com"))
        account = rt.load_account("pebble")
        assert account is not None and account.uri
        assert account.uri.startswith(pebble.directory_url.rsplit("/", 1)[0])
        prepare_ahead(issuer, account_context(rt, "pebble", "prep1.example.com"))  # a second worker
        assert calls == ["prep0.example.com"]
