"""What on this machine keeps a deploy target from working, found without changing anything.

``certmgr validate`` asks every local deploy target (``ChecksSetup``; every
:class:`~providers.deployers.base.MailDeployer` is one through :class:`SetupChecks`): a Postfix
``config_dir`` that does not exist, a directory to write into that is a file, a command
that is no program.  A target on another host (``host = "ssh://…"``) is not checked
here: validate does not connect to MTA hosts, the deployment says what is missing there.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path

from providers.deployers.hosts import Host

#: where systemd looks for a command the unit names without a path (the service's PATH)
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: (option key, path, "dir" or "file") that must exist before a deployment
Required = tuple[str, str, str]
#: (option key, directory a deployment writes into and creates when missing)
Created = tuple[str, str]
#: (option key, argument list the deployment runs)
Run = tuple[str, Sequence[str]]


class SetupChecks:
    """The hooks a deployer fills in to say what it needs on its host, and the check of them."""

    host: Host

    def required_paths(self) -> list[Required]:
        """(option key, path, "dir" or "file") that must exist before a deployment."""
        return []

    def created_dirs(self) -> list[Created]:
        """(option key, directory) the deployment writes into, creating it when missing."""
        return []

    def setup_commands(self) -> list[Run]:
        """(option key, argument list) of the commands the deployment runs."""
        return []

    def setup_problems(self) -> list[tuple[str, str]]:
        if self.host.label != "local":
            return []  # validate does not connect to MTA hosts: the deployment says what is missing there
        return setup_problems(self.required_paths(), self.created_dirs(), self.setup_commands())


def setup_problems(required: Iterable[Required], created: Iterable[Created],
                   commands: Iterable[Run]) -> list[tuple[str, str]]:
    """(option key, what is wrong and what to do) for every problem found on this machine."""
    problems: list[tuple[str, str]] = []
    missing: list[str] = []
    for key, path, kind in required:
        if any(path.startswith(m.rstrip("/") + "/") for m in missing):
            continue  # inside a directory already said to be missing
        if why := _missing(path, kind):
            problems.append((key, why))
            missing.append(path)
    for key, directory in created:
        if why := _not_creatable(directory):
            problems.append((key, why))
    for key, argv in commands:
        if argv and (why := _not_a_program(argv[0])):
            problems.append((key, why))
    return problems


def _missing(path: str, kind: str) -> str | None:
    try:
        mode = os.stat(path).st_mode
    except PermissionError:
        return (f"{path} cannot be looked at by the user validate runs as (permission denied); run validate as "
                "the service's user and give that user access to it")
    except OSError:
        mode = None
    if kind == "dir" and not (mode is not None and stat.S_ISDIR(mode)):
        what = "is not a directory" if mode is not None else "does not exist"
        return f"{path} {what} on this machine; give the directory the MTA reads its config from"
    if kind == "file" and not (mode is not None and stat.S_ISREG(mode)):
        what = "is not a regular file" if mode is not None else "does not exist"
        return f"{path} {what} on this machine; give the path of the existing file"
    return None


def _not_creatable(directory: str) -> str | None:
    """Why ``directory`` cannot be created or written into (its nearest existing ancestor
    must be a directory), or None."""
    p = Path(directory).absolute()
    while not p.exists() and not p.is_symlink():
        p = p.parent
    if p.is_dir():
        return None
    return (f"{directory} cannot be a directory: {p} is a file on this machine; "
            "choose a directory path or remove the file")


def _not_a_program(command: str) -> str | None:
    if "/" in command:
        if os.path.isfile(command) and os.access(command, os.X_OK):
            return None
        what = "is not an executable file" if os.path.exists(command) else "does not exist"
        return f"the command {command} {what} on this machine; correct the path or install the program"
    search = os.pathsep.join(p for p in (os.environ.get("PATH", ""), SYSTEMD_PATH) if p)
    if shutil.which(command, path=search):
        return None
    return (f"the command {command!r} is not found in PATH ({SYSTEMD_PATH}, and this shell's); "
            "install it or give its absolute path")
