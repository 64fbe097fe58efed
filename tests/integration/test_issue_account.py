"""Each issued version records the ACME account that ordered it, as the issuer reports it: the
account is read from the store once per run, not again for every certificate (at 1,000
certificates those reads were a twelfth of the issuance CPU)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from certmgr.config.load import load_config
from certmgr.lifecycle.renew import renew_many
from certmgr.runtime import Runtime
from tests.integration.test_crash_resume import mta_blocks, write_config
from tests.peers.pebble import Pebble, running_pebble

pytestmark = pytest.mark.integration

CERTS = 4


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    with running_pebble(tmp_path_factory.mktemp("pebble")) as p:
        yield p


def test_versions_record_the_ordering_account_read_once_per_run(tmp_path: Path, pebble: Pebble) -> None:
    config = write_config(tmp_path, pebble, mta_blocks(CERTS, prefix="acct"))
    reads: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "acme_account" in statement:
            reads.append(statement)

    with Runtime(load_config(config)) as rt:
        event.listen(rt.store.engine, "before_cursor_execute", before)
        assert [o.action for o in renew_many(rt, [], force=True)] == ["issued"] * CERTS
        event.remove(rt.store.engine, "before_cursor_execute", before)
        account = rt.load_account("pebble")
        assert account is not None and account.uri
        versions = [rt.store.version(slot.current_version_id) for slot in rt.stored_slots()]
    assert [v.account_uri if v else None for v in versions] == [account.uri] * CERTS
    # the issuer looks for a stored account once (none yet: it registers and saves one), not
    # once more per certificate
    assert len(reads) <= 3, f"{len(reads)} reads of the account table for {CERTS} certificates:\n" + "\n".join(reads)
