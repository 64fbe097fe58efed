"""The error hierarchy shared by the core and every provider.

Two questions decide what happens after a failure: *is it worth retrying*
(``RetryableError``) or *will it fail the same way until a person acts*
(``PermanentError``)?  Messages say what failed, for which host, and what to do.
"""

from __future__ import annotations

from collections.abc import Sequence


class CertmgrError(Exception):
    """Base of every error certmgr raises on purpose."""

    #: exit code the CLI uses when this error ends a command
    exit_code: int = 1


class ConfigError(CertmgrError):
    """The configuration is invalid.  Names the file, the table and the key."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        table: str | None = None,
        key: str | None = None,
        line: int | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.table = table
        self.key = key
        self.line = line
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.file:
            where.append(self.file + (f":{self.line}" if self.line else ""))
        if self.table:
            where.append(f"[{self.table}]")
        if self.key:
            where.append(self.key)
        prefix = " ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message

    def located(self, *, file: str | None = None, table: str | None = None) -> ConfigError:
        """Return a copy with file/table filled in where they were unknown."""
        return ConfigError(
            self.message,
            file=self.file or file,
            table=self.table or table,
            key=self.key,
            line=self.line,
        )


class ConfigErrors(ConfigError):
    """Every error found in one reading of the config, sorted by file and line.

    Its own fields are those of the first error, so code that handles one ConfigError
    still sees a file, table, key and line; ``errors`` holds them all."""

    errors: list[ConfigError]

    def __init__(self, errors: list[ConfigError], files: Sequence[str] = ()) -> None:
        """``files``: the config files in the order they were read (the main file first);
        errors are sorted by that order, then by line."""
        rank = {f: i for i, f in enumerate(files)}
        flat: dict[str, ConfigError] = {}
        for e in errors:
            for one in e.errors if isinstance(e, ConfigErrors) else [e]:
                flat.setdefault(str(one), one)  # a mistake met from several places is told once
        self.errors = sorted(flat.values(), key=lambda e: (rank.get(e.file or "", len(rank)), e.file or "",
                                                           e.line or 0, e.table or "", e.key or ""))
        first = self.errors[0]
        super().__init__(first.message, file=first.file, table=first.table, key=first.key, line=first.line)

    def _render(self) -> str:
        return "\n".join(ConfigError._render(e) for e in self.errors)


def raise_all(errors: list[ConfigError], files: Sequence[str] = ()) -> None:
    """Raise the errors found (one as itself, several as ConfigErrors); nothing if none."""
    if len(errors) == 1 and not isinstance(errors[0], ConfigErrors):
        raise errors[0]
    if errors:
        raise ConfigErrors(errors, files)


class UsageError(CertmgrError):
    """The command line asks for something impossible (unknown host, bad flag)."""

    exit_code = 2


class RetryableError(CertmgrError):
    """A failure that may go away by itself: network, 5xx, rate limit, busy lock.

    ``retry_after`` (seconds) is set when the other side said when to come back.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(CertmgrError):
    """A failure that repeats until a person changes something (CA refuses the name,
    bad credentials, a certificate that does not match its key)."""


class ChallengeError(RetryableError):
    """A challenge could not be published or was not validated by the CA."""


class IssuanceError(RetryableError):
    """The CA did not issue (order failed, timed out, server error)."""


class RateLimitedError(RetryableError):
    """The CA asked us to slow down (HTTP 429 / urn:ietf:params:acme:error:rateLimited)."""


class ImportRejected(PermanentError):
    """A certificate offered for import was refused; the message says why."""

    exit_code = 2


class DeployError(RetryableError):
    """Installing, reloading or verifying a deployment failed (and was rolled back)."""


class NotifyError(RetryableError):
    """A notification could not be delivered (it stays queued)."""


class StateError(PermanentError):
    """The state directory or database is damaged or unusable (unreadable key,
    read-only directory, disk full).  Nothing was half-written."""

    exit_code = 2


class LockBusy(RetryableError):
    """Somebody else holds the lock for this work; it is done or in progress."""
