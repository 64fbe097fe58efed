"""Values that pass `certmgr validate` must work through `certmgr renew` against a real pebble:
a hostname too long for a CN, a renew_before longer than the certificate lives, a name the CA
refuses for good."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from tests.e2e.conftest import Cli, acme_config
from tests.peers.pebble import Pebble, running_pebble

pytestmark = pytest.mark.integration

#: 70 characters: longer than the 64 a subject CN may hold, still a valid DNS name
LONG = "mx-" + "a" * 55 + ".example.com"


def test_hostname_longer_than_a_cn_is_issued_with_san_only(tmp_path: Path, pebble: Pebble) -> None:
    assert len(LONG) > 64
    cli = Cli(acme_config(tmp_path, pebble, f'[[mta]]\nhostname = "{LONG}"\nnames = ["mx.example.com"]\n'
                                            'issuer = "pebble"\n'))
    cli("validate")
    r = cli("renew", "--json")
    assert "Traceback" not in r.stderr, r.stderr
    out = cli.json("status", "--json")
    assert out[0]["serial"] and out[0]["state"] == "issued", out
    pem = next((tmp_path / "state").glob(f"certs/{LONG}/rsa/*/cert.pem")).read_bytes()
    cert = x509.load_pem_x509_certificate(pem)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == {LONG, "mx.example.com"}


def test_a_cn_longer_than_64_from_the_ca_is_read_without_warnings(tmp_path: Path, pebble: Pebble) -> None:
    # pebble (like other CAs) puts the only name into the CN even past 64 characters; reading such
    # a certificate must not print Python warnings on every run (cron mails them, journald keeps them)
    cli = Cli(acme_config(tmp_path, pebble, f'[[mta]]\nhostname = "{LONG}"\nissuer = "pebble"\n'))
    r = cli("renew", "--json")
    pem = next((tmp_path / "state").glob(f"certs/{LONG}/rsa/*/cert.pem")).read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cns = x509.load_pem_x509_certificate(pem).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [c.value for c in cns] == [LONG], "the case: the CA wrote a CN longer than 64"
    for result in (r, cli("status"), cli("metrics")):
        assert "Warning" not in result.stderr, result.stderr


def test_an_idn_hostname_is_named_on_the_command_line_as_in_the_config(tmp_path: Path, pebble: Pebble) -> None:
    # the config says "MX.Bücher.example." (stored as xn--bcher-kva): the admin types it as written
    cli = Cli(acme_config(tmp_path, pebble, '[[mta]]\nhostname = "MX.Bücher.example."\nissuer = "pebble"\n'))
    out = cli.json("renew", "--json", "mx.bücher.example")
    assert [(o["hostname"], o["action"]) for o in out] == [("mx.xn--bcher-kva.example", "issued")], out
    assert "revoked serial" in cli("revoke", "MX.Bücher.example.").stdout


def test_renew_before_longer_than_the_lifetime_does_not_renew_every_run(tmp_path: Path) -> None:
    # pebble's certificates live one day here; renew_before asks for 200 days
    with running_pebble(tmp_path / "pebble", validity_seconds=86400) as p:
        cli = Cli(acme_config(tmp_path, p, '[[mta]]\nhostname = "mx1.example.com"\nissuer = "pebble"\n'
                                           "renew_before = 200\n"))
        cli("validate")
        first = cli.json("renew", "--json")
        assert [o["action"] for o in first] == ["issued"], first
        for _ in range(2):
            again = cli.json("renew", "--json")
            assert [o["action"] for o in again] == ["not-due"], again
        assert len(list((tmp_path / "state").glob("certs/mx1.example.com/rsa/*/cert.pem"))) == 1


def test_permanent_refusal_is_not_retried_until_forced(tmp_path: Path) -> None:
    with running_pebble(tmp_path / "pebble", blocklist=("blocked.example",)) as p:
        cli = Cli(acme_config(tmp_path, p, '[[mta]]\nhostname = "mx.blocked.example"\nissuer = "pebble"\n'))
        r = cli("renew", "--json", check=1)
        assert "Traceback" not in r.stderr, r.stderr
        row = cli.json("status", "--json")[0]
        assert row["state"] == "failed" and "rejectedIdentifier" in (row["last_error"] or ""), row
        assert row["next_retry_at"] is None, "a permanent refusal gets no back-off retry"
        orders = p.log_text().count("POST /order-plz")
        for _ in range(2):
            out = cli.json("renew", "--json")
            assert [o["action"] for o in out] == ["waiting"], out
            assert "certmgr renew --force mx.blocked.example" in out[0]["message"]
        assert p.log_text().count("POST /order-plz") == orders, "the CA was not asked again"
        # forcing it is the person saying it is fixed: it is tried again
        cli("renew", "--force", "mx.blocked.example", "--json", check=1)
        assert p.log_text().count("POST /order-plz") > orders
