"""Key types, the one key-strength rule (for the config, imports and probes alike), and the
slot identity (hostname, key algorithm).

Pure data and functions: no cryptography import, so loading the config stays fast.
"""

from __future__ import annotations

import re
from typing import NamedTuple

#: the key types certmgr issues: name -> (algorithm, bits or curve size)
KEY_TYPES: dict[str, tuple[str, int]] = {
    "rsa-2048": ("rsa", 2048),
    "rsa-3072": ("rsa", 3072),
    "rsa-4096": ("rsa", 4096),
    "ecdsa-p256": ("ecdsa", 256),
    "ecdsa-p384": ("ecdsa", 384),
}


class SlotKey(NamedTuple):
    """What identifies one certificate slot: an MTA hostname and a key algorithm ("rsa" | "ecdsa").
    A dual MTA has two slots; the store keeps one row per key."""

    hostname: str
    key_alg: str


def slot_key(hostname: str, key_type: str) -> SlotKey:
    """The slot of ``hostname`` that holds a ``key_type`` (``rsa-2048`` ...) certificate."""
    return SlotKey(hostname, KEY_TYPES[key_type][0])


#: the weakest key accepted, per algorithm (bits; curve size for ECDSA).  DSA is weak at any size.
MIN_KEY_BITS: dict[str, int] = {"rsa": 2048, "ecdsa": 256}


def is_weak(alg: str, bits: int) -> bool:
    """Is a key of this algorithm and size weaker than certmgr accepts anywhere?"""
    return alg == "dsa" or bits < MIN_KEY_BITS.get(alg, 0)


def weak_key_reason(alg: str, bits: int) -> str | None:
    """Why a key of this algorithm and size cannot be an MTA certificate's key, or None."""
    if alg == "rsa" and is_weak(alg, bits):
        return f"the key is RSA-{bits}; at least RSA-{MIN_KEY_BITS['rsa']} is required"
    if alg == "ecdsa" and is_weak(alg, bits):
        return f"the key is ECDSA P-{bits}; at least P-{MIN_KEY_BITS['ecdsa']} is required"
    if alg not in MIN_KEY_BITS:
        return f"the key type {alg} is not accepted for MTA certificates (use RSA or ECDSA)"
    return None


_NAMED = re.compile(r"^(rsa)-(\d+)$|^(ecdsa)-p(\d+)$|^(dsa)")


def is_weak_key_type_name(name: str) -> bool:
    """Does a key type as written in a config (``rsa-1024``, ``ecdsa-p192``, ``dsa-2048``) name
    a key weaker than certmgr accepts?"""
    m = _NAMED.match(name)
    if m is None:
        return False
    if m[5]:
        return True
    alg, bits = (m[1], m[2]) if m[1] else (m[3], m[4])
    return is_weak(alg, int(bits))
