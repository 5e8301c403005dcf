"""What the ``digest`` command writes to a terminal: log lines and a one-line progress display.

Log lines go to stderr (with journald priorities under systemd); a progress
line is erased before each log line so the two never run together.
"""

from __future__ import annotations

import logging
import os
import sys
from logging.handlers import SysLogHandler
from pathlib import Path
from typing import ClassVar

SYSLOG_SOCKET = Path("/dev/log")  # where syslog, or journald, listens


def setup_logging(verbose: bool) -> None:
    handler = _StderrHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        # journald stamps each line itself and reads <N> as the priority.
        handler.setFormatter(_JournalFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    logging.getLogger("digest").setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("httpx", "httpcore", "aiosmtplib", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class _JournalFormatter(logging.Formatter):
    _PRIORITY: ClassVar[dict[int, int]] = {
        logging.DEBUG: 7,
        logging.INFO: 6,
        logging.WARNING: 4,
        logging.ERROR: 3,
        logging.CRITICAL: 2,
    }

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record).replace("\n", " | ")  # one journal entry per record
        return f"<{self._PRIORITY.get(record.levelno, 6)}>{text}"


def log_to_syslog() -> None:
    """Also send the log lines to syslog (the journal), when stderr reaches no person.

    A mail server runs ``digest ingest`` with stderr captured at best:
    Postfix's local(8) quotes it in a bounce and discards it after a
    successful pipe. Under systemd (``$JOURNAL_STREAM``) stderr is the
    journal already, and on a terminal the person sees it.
    """
    if stderr_is_tty() or os.environ.get("JOURNAL_STREAM") or not SYSLOG_SOCKET.exists():
        return
    try:
        handler = SysLogHandler(str(SYSLOG_SOCKET), facility=SysLogHandler.LOG_MAIL)
    except OSError:  # nothing listening: stderr is all there is
        return
    # "digest[pid]: " is the tag syslog daemons and journald read the identifier from
    handler.setFormatter(logging.Formatter("digest[%(process)d]: %(message)s"))
    logging.getLogger().addHandler(handler)


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()


class ProgressLine:
    """A one-line progress display on a terminal; silent otherwise.

    The line is drawn with a carriage return and no newline, so anything else
    written to stderr must first erase it (``clear_all``), or the two run together.
    """

    shown_now: ClassVar[list[ProgressLine]] = []

    @classmethod
    def clear_all(cls) -> None:
        for progress in list(cls.shown_now):
            progress.clear()

    def __init__(self, label: str) -> None:
        self.label = label
        self.enabled = stderr_is_tty()
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if self.enabled:
            sys.stderr.write(f"\r{self.label} {done}/{total}\x1b[K")
            sys.stderr.flush()
            self.shown = True
            if self not in ProgressLine.shown_now:
                ProgressLine.shown_now.append(self)

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            self.shown = False
        if self in ProgressLine.shown_now:
            ProgressLine.shown_now.remove(self)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Log lines on stderr that first erase a progress line in the way.

    Once stderr cannot be written (a pipe whose reader left: ``digest once
    2>&1 | head``), later lines are dropped: logging must never be what
    fails the process, nor print a "Logging error" report per line.
    """

    gone = False

    def emit(self, record: logging.LogRecord) -> None:
        if self.gone:
            return
        try:
            ProgressLine.clear_all()
        except (OSError, ValueError):
            self.gone = True
            return
        super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        if isinstance(sys.exc_info()[1], OSError | ValueError):
            self.gone = True
            return
        super().handleError(record)
