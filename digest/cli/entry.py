"""The ``digest`` command: argument parsing, logging set-up, exit codes.

Errors are one or two readable lines on stderr; the traceback only with
``-v`` (docs/commands.md). The commands themselves live in ``digest.cli.commands``
(the work) and ``digest.cli.status`` (what is stored); log and progress lines in
``digest.cli.terminal``; the output-path checks in ``digest.cli.writable``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from digest import __version__
from digest.cli.commands import (
    cmd_archive,
    cmd_check,
    cmd_ingest,
    cmd_once,
    cmd_preview,
    cmd_restore,
    cmd_run,
    cmd_secret,
)
from digest.cli.status import cmd_readers, cmd_status
from digest.cli.terminal import setup_logging
from digest.errors import EXIT_INTERRUPTED, EXIT_SOFTWARE, EXIT_USAGE, UsageError, translate

log = logging.getLogger("digest")


def _global_options(*, suppress: bool) -> argparse.ArgumentParser:
    """``--config`` and ``-v``, accepted before and after the command.

    The subcommands' copy has no defaults (``SUPPRESS``): otherwise argparse
    would overwrite ``digest --config X once`` with the subparser's default.
    """
    default: dict[str, Any] = {"default": argparse.SUPPRESS} if suppress else {}
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="PATH",
        help="the configuration (default: $DIGEST_CONFIG, else subscribers.yaml in this folder)",
        **default,
    )
    common.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging and tracebacks", **default
    )
    return common


def _parser() -> argparse.ArgumentParser:
    top = _global_options(suppress=False)
    common = _global_options(suppress=True)
    p = argparse.ArgumentParser(
        prog="digest",
        parents=[top],
        description="Email each subscriber the new arXiv papers matching their keywords.",
    )
    p.add_argument("--version", action="version", version=f"digest {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    once = sub.add_parser("once", parents=[common], help="run one cycle now")
    once.add_argument(
        "--dry-run",
        action="store_true",
        help="fetch, match and compose, but send and record nothing",
    )
    once.add_argument(
        "--outbox", metavar="DIR", type=Path, help="write .eml files to DIR instead of sending"
    )
    once.add_argument("--subscriber", metavar="EMAIL", help="only this subscriber")

    preview = sub.add_parser(
        "preview", parents=[common], help="render a subscriber's next digest to an HTML file"
    )
    preview.add_argument("email", metavar="EMAIL")
    preview.add_argument("-o", "--output", metavar="FILE", type=Path)

    check = sub.add_parser("check", parents=[common], help="validate the configuration")
    check.add_argument("--smtp", action="store_true", help="also log in to the SMTP server")
    check.add_argument(
        "--imap", action="store_true", help="also log in to the IMAP inbox (settings.inbox)"
    )

    sub.add_parser("status", parents=[common], help="last and next cycle, per-subscriber counts")
    arch = sub.add_parser("archive", parents=[common], help="write the Daily Papers page")
    arch.add_argument("-o", "--output", metavar="FILE", type=Path, help="default: standard out")
    sub.add_parser("run", parents=[common], help="the daemon: a cycle on every scheduled day")
    ingest = sub.add_parser(
        "ingest",
        parents=[common],
        help="act on one reply read from standard input (an MTA pipe, procmail, fetchmail)",
    )
    ingest.add_argument(
        "--imap",
        action="store_true",
        help="instead, read the replies in settings.inbox once (before a cycle run by a timer)",
    )
    sub.add_parser(
        "restore",
        parents=[common],
        help="put an unreadable database back from its backup and the changes recorded since",
    )
    rd = sub.add_parser(
        "readers", parents=[common], help="what readers chose by reply; lift a suppression"
    )
    rd.add_argument("email", metavar="EMAIL", nargs="?", help="one reader (default: all)")
    rd.add_argument(
        "--resume",
        action="store_true",
        help="lift the reader's unsubscribe, pause or bounce suspension",
    )
    secret = sub.add_parser(
        "secret", parents=[common], help="the reply secret that signs the links in digests"
    )
    actions = secret.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser(
        "rotate",
        parents=[common],
        help="sign new links with a new key; links already mailed still unsubscribe",
    )
    return p


COMMANDS = {
    "check": cmd_check,
    "once": cmd_once,
    "preview": cmd_preview,
    "status": cmd_status,
    "run": cmd_run,
    "archive": cmd_archive,
    "ingest": cmd_ingest,
    "readers": cmd_readers,
    "restore": cmd_restore,
    "secret": cmd_secret,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    setup_logging(args.verbose)
    try:
        code = COMMANDS[args.command](args)
        if sys.stdout is not None:
            sys.stdout.flush()  # a full disk or a closed pipe behind stdout shows here
        return code
    except UsageError as exc:
        _say(f"digest: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _say("digest: interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:
        # the one place where what went wrong becomes an exit code
        error = translate(exc)
        if args.verbose:
            log.exception("digest failed" if error else "unexpected error")
        if error is not None:
            _say(f"digest: {error}")
            return error.exit_code
        # a bug: say so briefly, the traceback with -v
        _say(
            f"digest: unexpected error: {type(exc).__name__}: {exc} (run with -v for the traceback)"
        )
        return EXIT_SOFTWARE
    finally:
        _flush_or_discard()


def _say(line: str) -> None:
    """One line on stderr, if anybody still reads it."""
    with contextlib.suppress(OSError, ValueError):  # a closed pipe, or no stderr at all
        print(line, file=sys.stderr, flush=True)


def _flush_or_discard() -> None:
    """Flush stdout and stderr now; what nobody can read any more goes to /dev/null.

    The interpreter flushes both again on the way out: into a closed pipe
    that prints "Exception ignored" and turns the exit code into 120.
    """
    for stream in (sys.stdout, sys.stderr):
        if stream is None:
            continue
        try:
            stream.flush()
        except (OSError, ValueError):
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, stream.fileno())
                os.close(devnull)
