"""The daemon's probe job tells people when an MTA's TLS breaks, once, louder later, and when it recovers.

Real peers: a private Postfix serving the certificate certmgr manages (a manual-CA certificate made
with `certmgr csr` and signed by a test CA), a private BIND so the MTA's name resolves to the probed
address, and an aiosmtpd mailbox behind the email notifier.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from certmgr.config.load import load_config
from certmgr.lifecycle.manual import export_csr, import_certificate
from certmgr.runtime import Runtime
from certmgr.service.jobs import probe_job
from certmgr.store import utcnow
from tests.peers.named import running_named
from tests.peers.postfix import PostfixPeer, postconf, wait_until
from tests.peers.smtpd import SmtpServer, plain_body
from tests.peers.testca import TestCA

pytestmark = pytest.mark.integration
HOST = "mx1.example.com"


def subjects(smtpd: SmtpServer) -> list[str]:
    return [str(m.message["Subject"]) for m in smtpd.messages]


def test_probe_turning_critical_notifies_once_escalates_and_recovers(tmp_path: Path, smtpd: SmtpServer) -> None:
    ca = TestCA("certmgr test corporate CA")
    trust = tmp_path / "trust.pem"
    trust.write_bytes(ca.root_pem + smtpd.ca_file.read_bytes())
    chain = tmp_path / "chain.pem"
    peer = PostfixPeer(tmp_path / "postfix", hostname=HOST, chain_files=[chain])
    with running_named(tmp_path / "named", zone="example.com") as named:  # *.example.com -> 127.0.0.1
        config = tmp_path / "certmgr.toml"
        config.write_text(f"""
[certmgr]
state_dir = "{tmp_path / 'state'}"
trust = "{trust}"
resolver = "{named.server}"

[issuer.corp]
type = "manual"

{smtpd.notify_toml()}
[[mta]]
hostname = "{HOST}"
issuer = "corp"
notify = ["ops"]
smtp = "127.0.0.1:{peer.port}"
""")
        rt = Runtime(load_config(config))
        ((_alg, csr),) = export_csr(rt, HOST)
        signed = tmp_path / "signed.pem"
        signed.write_bytes(ca.sign_csr(csr))
        import_certificate(rt, HOST, signed)
        version = rt.store.version(rt.store.slots()[0].current_version_id)
        assert version is not None and version.key_path
        chain.write_bytes(Path(version.key_path).read_bytes() + Path(version.fullchain_path).read_bytes())
        chain.chmod(0o600)
        peer.start()
        try:
            probe_job(rt, lambda: False)
            last = rt.store.last_probe(HOST)
            assert last is not None, "no probe recorded"
            assert last.status == "ok", last.problems
            assert smtpd.messages == []

            # STARTTLS switched off: CRITICAL, told once, not again on the next round nor after a restart
            postconf(peer, "smtpd_tls_security_level = none")
            peer.reload()
            wait_until(lambda: "STARTTLS" not in _ehlo(peer.port), what="postfix to stop offering STARTTLS")
            probe_job(rt, lambda: False)
            assert len(smtpd.messages) == 1, subjects(smtpd)
            first = smtpd.messages[0].message
            assert "PROBE CRITICAL" in str(first["Subject"]) and HOST in str(first["Subject"])
            assert "STARTTLS is not offered" in plain_body(first)
            probe_job(rt, lambda: False)
            rt.close()
            rt = Runtime(load_config(config))  # a restarted daemon
            probe_job(rt, lambda: False)
            assert len(smtpd.messages) == 1, subjects(smtpd)

            # still CRITICAL a day later: said again, once
            later = utcnow() + timedelta(hours=25)
            probe_job(rt, lambda: False, now=later)
            probe_job(rt, lambda: False, now=later + timedelta(minutes=15))
            assert len(smtpd.messages) == 2, subjects(smtpd)
            assert "(STILL)" in subjects(smtpd)[1]

            # fixed: one "recovered" notice, then silence
            postconf(peer, "smtpd_tls_security_level = may")
            peer.reload()
            wait_until(lambda: "STARTTLS" in _ehlo(peer.port), what="postfix to offer STARTTLS again")
            probe_job(rt, lambda: False, now=later + timedelta(minutes=30))
            probe_job(rt, lambda: False, now=later + timedelta(minutes=45))
            assert len(smtpd.messages) == 3, subjects(smtpd)
            assert subjects(smtpd)[2].startswith(f"[certmgr] RECOVERED: {HOST}")

            # a second episode is reported again
            postconf(peer, "smtpd_tls_security_level = none")
            peer.reload()
            wait_until(lambda: "STARTTLS" not in _ehlo(peer.port), what="postfix to stop offering STARTTLS")
            probe_job(rt, lambda: False, now=later + timedelta(hours=1))
            assert len(smtpd.messages) == 4 and "PROBE CRITICAL" in subjects(smtpd)[3], subjects(smtpd)
        finally:
            rt.close()
            peer.stop()


def _ehlo(port: int) -> str:
    import smtplib

    with smtplib.SMTP("127.0.0.1", port, timeout=5) as s:
        s.ehlo("probe.example.net")
        return " ".join(s.esmtp_features).upper()
