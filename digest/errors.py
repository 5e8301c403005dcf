"""One error tree for the operator, and every exit code in one place.

Every failure that digest expects is a ``DigestError`` whose message is meant
to be read by a person, plus the exit code the CLI returns for it and whether
trying again later may help (``retryable``: the daemon retries only those).
Foreign exceptions (yaml, httpx, aiosmtplib, json, OS errors) are translated
once, at the module that imports that library, with ``raise ... from``.
"""

from __future__ import annotations

import errno

# Exit codes (docs/commands.md): sysexits' EX_TEMPFAIL, EX_CONFIG and EX_SOFTWARE,
# and the shell's 128 + SIGINT. systemd's RestartPreventExitStatus=78 keeps a
# broken config from restart-looping.
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_SOFTWARE = 70
EXIT_CANTCREAT = 73
EXIT_TEMPFAIL = 75
EXIT_CONFIG = 78
EXIT_INTERRUPTED = 130


class DigestError(Exception):
    """Base of every error digest reports to the operator.

    The default is a temporary failure: nothing half-done was recorded and a
    rerun later is safe and may succeed.
    """

    exit_code = EXIT_TEMPFAIL
    retryable = True


class UsageError(DigestError):
    """The command line asks for something that does not exist."""

    exit_code = EXIT_USAGE
    retryable = False


class ConfigError(DigestError):
    """subscribers.yaml (or an environment override) is unusable.

    ``problems`` holds every problem found, each naming its place, so the
    operator can fix them all in one edit.
    """

    exit_code = EXIT_CONFIG
    retryable = False

    def __init__(self, source: str, problems: list[str] | tuple[str, ...]) -> None:
        self.source = source
        self.problems = tuple(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(f"{source}: {len(self.problems)} {noun}:\n{lines}")


class MissingExtraError(DigestError):
    """A setting needs an optional extra (``digest[semantic]``) that is not installed."""

    exit_code = EXIT_CONFIG
    retryable = False


class FetchError(DigestError):
    """arXiv could not be asked; nothing was recorded, a rerun is safe.

    ``url`` is the API asked, ``status`` the last HTTP status (None when no
    answer came), ``attempts`` how many requests were made for the page.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str = "",
        status: int | None = None,
        attempts: int = 0,
    ) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.attempts = attempts


class ArxivQueryError(FetchError):
    """arXiv answered with an error feed: the query itself is wrong.

    Retrying will not help: the keywords in the config must change.
    """

    exit_code = EXIT_CONFIG
    retryable = False


class ClockError(DigestError):
    """The machine's clock disagrees with arXiv's, or runs behind the last cycle.

    Nothing was recorded: every record would carry the wrong time. A rerun
    helps once the clock is set right (exit 75, like any temporary failure).
    """


class Stopped(DigestError):
    """A stop request (SIGTERM) interrupted the work; what was not finished is not recorded."""


class StoreError(DigestError):
    """The database cannot be used."""


class StoreLockedError(StoreError):
    """Another digest process owns the database."""


class StoreUnreadableError(StoreError):
    """The database exists but cannot be read (permissions, a folder): the operator must act."""

    exit_code = EXIT_CONFIG
    retryable = False


class StoreCorruptError(StoreError):
    """The database file does not parse; it is left untouched for the operator."""

    exit_code = EXIT_CONFIG
    retryable = False


class TemplateError(DigestError):
    """A (possibly operator-supplied) template failed to render."""

    exit_code = EXIT_CONFIG
    retryable = False


class DeliveryError(DigestError):
    """The SMTP server could not be used for the whole batch."""


class SmtpConfigError(DeliveryError):
    """The SMTP server refused our login or TLS set-up: fix the settings."""

    exit_code = EXIT_CONFIG


class InboxError(DigestError):
    """The IMAP inbox could not be read this time; the next poll tries again (exit 75)."""


class InboxConfigError(InboxError):
    """The IMAP server refused our login, TLS set-up or folder: fix the settings."""

    exit_code = EXIT_CONFIG
    retryable = False


class OutputError(DigestError):
    """A file or folder digest must write cannot be written; ``setting`` names it."""

    exit_code = EXIT_CONFIG
    retryable = False

    def __init__(self, message: str, *, path: str = "", setting: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.setting = setting


class CannotCreateError(OutputError):
    """A path given on the command line (``-o``, ``--outbox``) cannot be written."""

    exit_code = EXIT_CANTCREAT


class MachineError(DigestError):
    """The disk is full, over quota or failing, or nobody reads the output any more.

    Not digest's fault and not the config's: a rerun once it is fixed is
    safe (exit 75). What was delivered before is recorded; a delivery the
    database could not keep is named in the log.
    """


# errno values that say the machine failed, not digest: whichever module met
# them and however it translated them, they end in a MachineError (exit 75)
MACHINE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EPIPE})


def machine_cause(exc: BaseException) -> OSError | None:
    """The full disk, quota, I/O error or closed pipe behind ``exc``, if any (its causes too)."""
    seen: BaseException | None = exc
    for _ in range(10):  # a chain is a few links long; bounded, should one ever loop
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.errno in MACHINE_ERRNOS:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def translate(exc: BaseException) -> DigestError | None:
    """``exc`` as the error the operator is told, or None for a bug (shown as one).

    The one rule for every boundary (the CLI, the daemon): a full or
    failing disk or a closed output is a ``MachineError`` whatever module
    met it, even one that translated it as a config or output error; other
    ``DigestError`` are themselves; any other exception is a bug.
    """
    cause = machine_cause(exc)
    if cause is None:
        return exc if isinstance(exc, DigestError) else None
    if isinstance(exc, DigestError):
        return exc if isinstance(exc, MachineError) else MachineError(str(exc))
    if cause.errno == errno.EPIPE:
        return MachineError(
            "the output was closed (its reader went away), so digest stopped there; "
            "what a cycle delivered before is recorded, the rest goes out at the next one"
        )
    where = f" ({cause.filename})" if cause.filename else ""
    return MachineError(
        f"{cause.strerror or cause}{where}; free some space or fix the disk and run again"
    )
