"""The exec challenge solver runs a real command (no shell) with the task in its environment."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from certmgr.errors import ChallengeError, ConfigError
from certmgr.interfaces import ChallengeTask, Options, ProviderEnv
from providers.challenges.exec import ExecSolver

TASK = ChallengeTask(
    domain="mx.example.test", token="tok123", key_authorization="tok123.thumb", dns_value="dnsvalue"
)


def build(table: dict[str, Any], base: Path) -> ExecSolver:
    return ExecSolver.from_config(
        "challenge",
        Options(table, where="issuer.x.challenge", base_dir=base),
        ProviderEnv(config_dir=base, state_dir=base),
    )


def hook(tmp_path: Path, body: str) -> list[str]:
    script = tmp_path / "hook.py"
    script.write_text("import os, sys\n" + body)
    return [sys.executable, str(script)]


def test_present_and_cleanup_get_action_and_environment(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    cmd = hook(
        tmp_path,
        f"""
with open({str(out)!r}, "a") as f:
    f.write(" ".join([sys.argv[1]] + [os.environ[k] for k in (
        "CERTMGR_CHALLENGE_TYPE", "CERTMGR_DOMAIN", "CERTMGR_TOKEN",
        "CERTMGR_KEY_AUTHORIZATION", "CERTMGR_DNS_VALUE")]) + "\\n")
""",
    )
    solver = build({"type": "dns-01", "provider": "exec", "command": cmd}, tmp_path)
    assert solver.challenge_type == "dns-01"
    solver.present(TASK)
    solver.cleanup(TASK)
    assert out.read_text().splitlines() == [
        "present dns-01 mx.example.test tok123 tok123.thumb dnsvalue",
        "cleanup dns-01 mx.example.test tok123 tok123.thumb dnsvalue",
    ]


def test_failure_carries_stderr_tail(tmp_path: Path) -> None:
    cmd = hook(tmp_path, "sys.stderr.write('x' * 5000 + 'zone is locked\\n'); sys.exit(3)")
    solver = build({"type": "http-01", "command": cmd}, tmp_path)
    with pytest.raises(ChallengeError) as err:
        solver.present(TASK)
    text = str(err.value)
    assert "exited with 3" in text and "zone is locked" in text and "mx.example.test" in text
    assert len(text) < 1500


def test_arguments_are_not_shell_interpreted(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    solver = build({"type": "http-01", "command": ["/bin/echo", f"; touch {marker}"]}, tmp_path)
    solver.present(TASK)
    assert not marker.exists()


def test_missing_binary(tmp_path: Path) -> None:
    solver = build({"type": "http-01", "command": [str(tmp_path / "nope")]}, tmp_path)
    with pytest.raises(ChallengeError, match="not found"):
        solver.present(TASK)


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"type": "http-01", "command": "/bin/true"}, "command"),
        ({"type": "tls-alpn-01", "command": ["/bin/true"]}, "type"),
        ({"type": "dns-01", "provider": "rfc2136", "command": ["/bin/true"]}, "provider"),
        ({"type": "http-01", "command": ["/bin/true"], "shell": True}, "shell"),
        ({"type": "http-01"}, "command"),
    ],
)
def test_bad_config(tmp_path: Path, table: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        build(table, tmp_path)
    assert err.value.key == key
