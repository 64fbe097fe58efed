"""The key types certmgr issues (pure data: no cryptography import, so config loading stays fast)."""

from __future__ import annotations

#: the key types certmgr issues: name -> (algorithm, bits or curve size)
KEY_TYPES: dict[str, tuple[str, int]] = {
    "rsa-2048": ("rsa", 2048),
    "rsa-3072": ("rsa", 3072),
    "rsa-4096": ("rsa", 4096),
    "ecdsa-p256": ("ecdsa", 256),
    "ecdsa-p384": ("ecdsa", 384),
}
