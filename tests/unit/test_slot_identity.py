"""One slot identity, (hostname, key algorithm), and names decoded in one place on the model."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from certmgr.config.load import load_config
from certmgr.pki.keytypes import SlotKey, slot_key
from certmgr.store import CertVersion, ManagedCert


def test_config_and_store_name_a_slot_alike(tmp_path: Path) -> None:
    path = tmp_path / "certmgr.toml"
    path.write_text(f'[certmgr]\nstate_dir = "{tmp_path}"\n[issuer.m]\ntype = "manual"\n'
                    '[[mta]]\nhostname = "mx1.example.com"\nissuer = "m"\nkey = ["ecdsa-p256", "rsa-3072"]\n')
    mta = load_config(path).mtas[0]
    assert mta.slot_keys == (SlotKey("mx1.example.com", "ecdsa"), SlotKey("mx1.example.com", "rsa"))
    assert slot_key("mx1.example.com", "rsa-3072") == mta.slot_keys[1]
    row = ManagedCert(hostname="mx1.example.com", key_alg="rsa", key_type="rsa-3072",
                      names=json.dumps(list(mta.all_names)), issuer="m")
    assert row.slot_key in set(mta.slot_keys)
    assert row.all_names == mta.all_names == ("mx1.example.com",)


def test_a_version_decodes_its_names_once_into_a_tuple() -> None:
    at = datetime(2026, 11, 1, tzinfo=UTC)
    version = CertVersion(managed_id=1, serial="1f", names='["mx1.example.com", "mail.example.com"]',
                          not_before=at, not_after=at, sha256="a" * 64, created_at=at)
    assert version.all_names == ("mx1.example.com", "mail.example.com")
