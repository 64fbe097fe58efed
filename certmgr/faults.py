"""Crash checkpoints for fault-injection tests.

With ``CERTMGR_CRASH_AFTER=<step>`` in the environment, the process kills itself
with SIGKILL right after recording that lifecycle step (``key_ready``,
``order_created``, ``challenge_answered``, ``finalized``, ``certificate_stored``,
``issued``, ``installed``, ...), exactly as a power cut or an OOM kill would.  The
tests use it to prove that every step can be resumed; unset, it costs one lookup.
"""

from __future__ import annotations

import os
import signal

_VAR = "CERTMGR_CRASH_AFTER"


def checkpoint(step: str) -> None:
    if os.environ.get(_VAR) == step:
        os.kill(os.getpid(), signal.SIGKILL)
