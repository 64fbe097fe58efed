"""RSA keys are made one per core at a time: renewal threads that all generated at once shared
the cores, so every key was ready only when the last one was and no order started before."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from certmgr.pki import keys


def test_rsa_keys_are_generated_one_per_core_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    real = rsa.generate_private_key
    lock = threading.Lock()
    running = [0]
    most = [0]

    def counted(*args: Any, **kwargs: Any) -> rsa.RSAPrivateKey:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            time.sleep(0.05)  # long enough for every thread to try at once
            return real(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(rsa, "generate_private_key", counted)
    threads = 4 * (os.cpu_count() or 1)
    with ThreadPoolExecutor(threads) as pool:
        made = list(pool.map(lambda _: keys.generate_key("rsa-2048"), range(threads)))
    assert all(isinstance(k, rsa.RSAPrivateKey) and k.key_size == 2048 for k in made)
    assert 1 <= most[0] <= (os.cpu_count() or 1)
