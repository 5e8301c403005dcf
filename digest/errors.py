"""One error tree for the operator.

Every failure that digest expects is a ``DigestError`` whose message is meant
to be read by a person, plus the exit code the CLI returns for it. Foreign
exceptions (yaml, httpx, aiosmtplib, json, OS errors) are translated once, at
the module that imports that library, with ``raise ... from``.
"""

from __future__ import annotations

# Exit codes (design.md): sysexits' EX_TEMPFAIL and EX_CONFIG. systemd's
# RestartPreventExitStatus=78 keeps a broken config from restart-looping.
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_TEMPFAIL = 75
EXIT_CONFIG = 78


class DigestError(Exception):
    """Base of every error digest reports to the operator."""

    exit_code = EXIT_TEMPFAIL


class UsageError(DigestError):
    """The command line asks for something that does not exist."""

    exit_code = EXIT_USAGE


class ConfigError(DigestError):
    """subscribers.yaml (or an environment override) is unusable.

    ``problems`` holds every problem found, each naming its place, so the
    operator can fix them all in one edit.
    """

    exit_code = EXIT_CONFIG

    def __init__(self, source: str, problems: list[str] | tuple[str, ...]) -> None:
        self.source = source
        self.problems = tuple(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(f"{source}: {len(self.problems)} {noun}:\n{lines}")


class FetchError(DigestError):
    """arXiv could not be asked; nothing was recorded, a rerun is safe."""

    exit_code = EXIT_TEMPFAIL


class ArxivQueryError(FetchError):
    """arXiv answered with an error feed: the query itself is wrong."""


class StoreError(DigestError):
    """The database cannot be used."""

    exit_code = EXIT_TEMPFAIL


class StoreLockedError(StoreError):
    """Another digest process owns the database."""

    exit_code = EXIT_TEMPFAIL


class StoreUnreadableError(StoreError):
    """The database exists but cannot be read (permissions, a folder): the operator must act."""

    exit_code = EXIT_CONFIG


class StoreCorruptError(StoreError):
    """The database file does not parse; it is left untouched for the operator."""

    exit_code = EXIT_CONFIG


class TemplateError(DigestError):
    """A (possibly operator-supplied) template failed to render."""

    exit_code = EXIT_CONFIG


class DeliveryError(DigestError):
    """The SMTP server could not be used for the whole batch."""

    exit_code = EXIT_TEMPFAIL


class SmtpConfigError(DeliveryError):
    """The SMTP server refused our login or TLS set-up: fix the settings."""

    exit_code = EXIT_CONFIG
