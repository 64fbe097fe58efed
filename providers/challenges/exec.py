"""Challenge solver that runs a command of the admin's (HTTP-01 or DNS-01).

Needs: an executable that publishes and removes challenge answers.  It is run without a
shell as ``<command...> present`` or ``<command...> cleanup`` with the environment
variables CERTMGR_CHALLENGE_TYPE, CERTMGR_DOMAIN, CERTMGR_TOKEN,
CERTMGR_KEY_AUTHORIZATION and CERTMGR_DNS_VALUE.  For ``present`` it must exit 0 only
once the CA can see the answer.

Config: ``type`` ("http-01" | "dns-01"), ``provider = "exec"`` (for dns-01), ``command``
(list of strings), ``timeout`` (seconds per run, default 300).
"""

from __future__ import annotations

import os
import subprocess
from typing import Self

from certmgr.errors import ChallengeError, ConfigError
from certmgr.interfaces import ChallengeTask, Options, ProviderEnv

#: how much of the command's stderr goes into the error message
STDERR_TAIL = 800


class ExecSolver:
    """Delegates present/cleanup to an external command."""

    description = "runs a command to publish and remove HTTP-01 or DNS-01 answers"

    def __init__(self, command: list[str], *, challenge_type: str, timeout: float = 300.0) -> None:
        if not command:
            raise ValueError("command must not be empty")
        self.command = list(command)
        self.challenge_type = challenge_type
        self.timeout = timeout

    @classmethod
    def from_config(cls, name: str, options: Options, env: ProviderEnv) -> Self:
        ctype = options.str("type", choices=["http-01", "dns-01"])
        provider = options.str("provider", None)
        if provider not in (None, "exec"):
            raise ConfigError(
                f'must be "exec" for this solver, got {provider!r}', table=options.where, key="provider"
            )
        command = options.command("command")
        timeout = options.float("timeout", 300.0, min=1.0)
        options.finish()
        return cls(command, challenge_type=ctype, timeout=timeout)

    def _run(self, action: str, task: ChallengeTask) -> None:
        env = {
            **os.environ,
            "CERTMGR_CHALLENGE_TYPE": self.challenge_type,
            "CERTMGR_DOMAIN": task.domain,
            "CERTMGR_TOKEN": task.token,
            "CERTMGR_KEY_AUTHORIZATION": task.key_authorization,
            "CERTMGR_DNS_VALUE": task.dns_value,
        }
        argv = [*self.command, action]
        try:
            proc = subprocess.run(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=self.timeout,
                check=False,
            )
        except FileNotFoundError as e:
            raise ChallengeError(
                f"{self.challenge_type} exec: {self.command[0]} not found; fix `command`"
            ) from e
        except PermissionError as e:
            raise ChallengeError(
                f"{self.challenge_type} exec: {self.command[0]} is not executable; fix its mode or `command`"
            ) from e
        except subprocess.TimeoutExpired as e:
            raise ChallengeError(
                f"{self.challenge_type} exec: `{' '.join(argv)}` for {task.domain} ran longer than "
                f"{self.timeout:g}s and was stopped"
            ) from e
        if proc.returncode != 0:
            tail = proc.stderr.decode("utf-8", "replace").strip()[-STDERR_TAIL:]
            raise ChallengeError(
                f"{self.challenge_type} exec: `{' '.join(argv)}` for {task.domain} exited with "
                f"{proc.returncode}: {tail or '(no stderr)'}"
            )

    def present(self, task: ChallengeTask) -> None:
        self._run("present", task)

    def cleanup(self, task: ChallengeTask) -> None:
        self._run("cleanup", task)
