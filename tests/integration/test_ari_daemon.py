"""The daemon's ARI job against real pebble, with Renewal Information (RFC 9773) laid over it
by the test proxy (pebble 2.4 has none): the CA's suggested window moves the renewal time, an
early window makes the renew job replace the certificate (new-order carries ``replaces``, and
pebble issues), Retry-After paces the next question, and an unknown certificate is not fatal."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from certmgr.config.load import load_config
from certmgr.runtime import Runtime
from certmgr.service.jobs import ari_job, renew_job
from certmgr.store import ManagedCert, utcnow
from providers.issuers.acme_net import ari_cert_id
from tests.peers.faultproxy import FaultProxy, running_faultproxy
from tests.peers.pebble import Pebble, running_pebble

pytestmark = pytest.mark.integration

HOST = "mx1.example.com"


@pytest.fixture
def ca(tmp_path: Path) -> Iterator[tuple[Pebble, FaultProxy]]:
    with running_pebble(tmp_path / "pebble") as p, \
            running_faultproxy(p.port, cert=p._cert, key=p._key, ca=p.ca_bundle) as proxy:
        proxy.offer_ari(retry_after=3600)
        yield p, proxy


def runtime(tmp_path: Path, pebble: Pebble, proxy: FaultProxy) -> Runtime:
    path = tmp_path / "certmgr.toml"
    path.write_text(f"""
[certmgr]
state_dir = "{tmp_path / 'state'}"

[issuer.pebble]
type = "acme"
directory = "{proxy.directory_url()}"
ca_bundle = "{pebble.ca_bundle}"
challenge = {{ type = "http-01", mode = "standalone", address = "127.0.0.1", port = {pebble.http_port} }}

[[mta]]
hostname = "{HOST}"
issuer = "pebble"
""")
    return Runtime(load_config(path))


def slot(rt: Runtime) -> ManagedCert:
    (only,) = rt.store.slots()
    return only


def never() -> bool:
    return False


def test_ari_window_moves_the_renewal_and_the_renewal_replaces(tmp_path: Path,
                                                               ca: tuple[Pebble, FaultProxy]) -> None:
    pebble, proxy = ca
    rt = runtime(tmp_path, pebble, proxy)
    try:
        assert renew_job(rt, never) == "1 issued"
        first = rt.store.version(slot(rt).current_version_id)
        assert first is not None and proxy.replaces == [None], "a first certificate replaces nothing"
        lifetime_rule = slot(rt).renew_at
        assert lifetime_rule is not None and first.ari_start is None, "no window known yet: lifetime rule"

        # an unknown certificate (404): a warning, asked again after ari_interval, nothing lost
        now = utcnow()
        assert ari_job(rt, never, now) == "1 asked, 0 changed"
        assert slot(rt).ari_retry_at == now + timedelta(seconds=rt.config.daemon.ari_interval)
        assert slot(rt).renew_at == lifetime_rule

        # the CA suggests a window in ten days: renewal moves into it; Retry-After paces the next ask
        cert_id = ari_cert_id(Path(first.cert_path).read_bytes())
        start = now + timedelta(days=10)
        proxy.ari_windows[cert_id] = (start, start + timedelta(days=1))
        later = now + timedelta(seconds=rt.config.daemon.ari_interval + 1)
        assert ari_job(rt, never, later) == "1 asked, 1 changed"
        moved = slot(rt)
        assert moved.renew_at is not None and start <= moved.renew_at <= start + timedelta(days=1)
        assert moved.ari_retry_at == later + timedelta(seconds=3600)
        asks = proxy.counts().get(f"/ari/{cert_id}", 0)
        assert ari_job(rt, never, later + timedelta(seconds=60)) == "0 asked, 0 changed"
        assert proxy.counts().get(f"/ari/{cert_id}", 0) == asks, "not asked again before Retry-After"
        assert renew_job(rt, never) == "1 not-due", "not due before the window"

        # the CA pulls the window into the past (as before a mass revocation): renew at once
        proxy.ari_windows[cert_id] = (now - timedelta(hours=2), now - timedelta(hours=1))
        assert ari_job(rt, never, later + timedelta(seconds=3601)) == "1 asked, 1 changed"
        assert renew_job(rt, never) == "1 issued"
        second = rt.store.version(slot(rt).current_version_id)
        assert second is not None and second.serial != first.serial
        assert proxy.replaces == [None, cert_id], "the new order names the certificate it replaces"
    finally:
        rt.close()
