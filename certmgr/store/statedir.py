"""Where certmgr keeps its files inside the state directory (0700).

    keys/<hostname>/<alg>-<stamp>.pem        private keys, 0600, never overwritten
    certs/<hostname>/<alg>/<serial>/          cert.pem, chain.pem, fullchain.pem (history)
    accounts/<issuer>-<dir>-<key>.pem         ACME account keys, 0600, one file per key
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from pathlib import Path

from certmgr.store.files import ensure_private_dir, ensure_state_root


class StateDir:
    def __init__(self, root: Path) -> None:
        self.root = root

    def ensure(self) -> StateDir:
        ensure_state_root(self.root)
        return self

    def _dir(self, *parts: str) -> Path:
        return ensure_private_dir(self.root.joinpath(*parts))

    def new_key_path(self, hostname: str, alg: str) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        return self._dir("keys", hostname) / f"{alg}-{stamp}-{secrets.token_hex(3)}.pem"

    def next_key_path(self, hostname: str, key_type: str) -> Path:
        """The key generated ahead for an MTA's next certificate of ``key_type`` (DANE
        "current + next": its 3 1 1 record is published long before it is certified)."""
        return self._dir("keys", hostname) / f"next-{key_type}.pem"

    def cert_dir(self, hostname: str, alg: str, serial: str) -> Path:
        return self._dir("certs", hostname, alg, serial)

    def account_key_path(self, issuer: str, directory: str, key_pem: bytes) -> Path:
        """One file per account key: processes that register at the same moment never overwrite
        each other's key, so a stored account always points at the key it was registered with."""
        key_digest = hashlib.sha256(key_pem).hexdigest()[:12]
        return self._dir("accounts") / f"{self._account_prefix(issuer, directory)}-{key_digest}.pem"

    def account_key_files(self, issuer: str, directory: str) -> list[Path]:
        """The account key files of ``issuer`` at ``directory``, the newest first."""
        prefix = self._account_prefix(issuer, directory)
        found = [p for p in self._dir("accounts").glob(f"{prefix}*.pem") if p.is_file()]
        return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)

    @staticmethod
    def _account_prefix(issuer: str, directory: str) -> str:
        return f"{issuer}-{hashlib.sha256(directory.encode()).hexdigest()[:12]}"
