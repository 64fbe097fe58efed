"""TLS reports mailed through a real Postfix into a maildir, ingested once, and
cross-checked against parsedmarc's reading of the same reports."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import parsedmarc
import pytest

from certmgr.monitor.tlsrpt import RESULT_TYPES, TlsReportError, reports_in_mail
from certmgr.monitor.tlsrpt_ingest import ingest_maildir
from certmgr.store.monitor import MonitorStore
from certmgr.store.monitor_types import TlsReport
from tests.peers.mailflow import MaildirMailbox
from tests.tlsrpt_reports import as_gzip, as_json, bomb, report

pytestmark = pytest.mark.integration
SINCE, UNTIL = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def mailbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MaildirMailbox]:
    m = MaildirMailbox(tmp_path_factory.mktemp("tlsrpt")).start()
    yield m
    m.stop()


def test_mailed_reports_ingested_once_and_as_parsedmarc_reads_them(mailbox: MaildirMailbox, tmp_path: Path) -> None:
    docs = [report("rep-gz-1", failures=5), report("rep-json-2", failures=1)]
    mailbox.mail_attachment(as_gzip(docs[0]), "application/tlsrpt+gzip", "reporter.test!reports.test!1.json.gz")
    mailbox.mail_attachment(as_json(docs[1]), "application/tlsrpt+json", "reporter.test!reports.test!2.json")
    mailbox.mail_attachment(as_gzip(docs[0]), "application/tlsrpt+gzip", "again.json.gz")  # sent twice
    mailbox.mail_attachment(bomb(), "application/tlsrpt+gzip", "bomb.json.gz")
    mailbox.mail_attachment(b'{"report-id": 1}', "application/tlsrpt+json", "bad.json")
    mailbox.wait_messages(5)

    # what arrived, read as mail, agrees with parsedmarc field by field
    ours: dict[str, TlsReport] = {}
    for m in (mailbox.maildir / "new").iterdir():
        with contextlib.suppress(TlsReportError):  # the bomb and the bad one: refused below
            ours.update((r.report_id, r) for r in reports_in_mail(m.read_bytes()))
    assert sorted(ours) == ["rep-gz-1", "rep-json-2"]
    for doc in docs:
        mine = ours[doc["report-id"]]
        theirs = parsedmarc.parse_smtp_tls_report_json(as_json(doc))
        assert mine.report_id == theirs["report_id"] and mine.organization == theirs["organization_name"]
        for p, q in zip(mine.policies, theirs["policies"], strict=True):
            assert (p.policy_type, p.policy_domain) == (q["policy_type"], q["policy_domain"])
            assert (p.successful, p.failed) == (q["successful_session_count"], q["failed_session_count"])
            assert [(f.result_type, f.sessions, f.receiving_mx_hostname) for f in p.failures] == [
                (f["result_type"], f["failed_session_count"], f["receiving_mx_hostname"])
                for f in q.get("failure_details", [])]

    store = MonitorStore.at(tmp_path / "db")
    result = ingest_maildir(mailbox.maildir, store, now=datetime.now(UTC))
    assert sorted(result.stored) == ["rep-gz-1", "rep-json-2"]
    assert result.duplicates == ["rep-gz-1"]
    reasons = sorted(reason for _, reason in result.refused)
    assert len(reasons) == 2
    assert "expands beyond" in reasons[0] or "expands beyond" in reasons[1]
    assert any("missing" in r or "expected" in r for r in reasons)

    summary = store.tlsrpt(SINCE, UNTIL)
    expected: Counter[str] = Counter()
    for doc in docs:
        theirs = parsedmarc.parse_smtp_tls_report_json(as_json(doc))
        for q in theirs["policies"]:
            for f in q.get("failure_details", []):
                expected[f["result_type"]] += f["failed_session_count"]
    assert summary.reports == 2 and set(summary.failures) == set(RESULT_TYPES)
    assert Counter(summary.failures) == expected
    assert summary.successful == sum(q["successful_session_count"] for d in docs
                                     for q in parsedmarc.parse_smtp_tls_report_json(as_json(d))["policies"])

    # a second run finds nothing new (the messages moved to cur/), nothing counted twice
    again = ingest_maildir(mailbox.maildir, store, now=datetime.now(UTC))
    assert (again.stored, again.duplicates, again.refused) == ([], [], [])
    assert store.tlsrpt(SINCE, UNTIL) == summary
