"""The ``digest`` command: argument parsing, logging set-up, exit codes.

Errors are one or two readable lines on stderr; the traceback only with
``-v`` (design.md). Only this module and the daemon read the real clock.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from digest import __version__, archive, atomic, config, inbox, ingest, mailroom, readers
from digest.cycle import Hooks, Options, collaborators, run_cycle, snapshot
from digest.daemon import Daemon
from digest.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SOFTWARE,
    EXIT_TEMPFAIL,
    EXIT_USAGE,
    CannotCreateError,
    ConfigError,
    DigestError,
    OutputError,
    StoreCorruptError,
    UsageError,
)
from digest.mailer import Mailer
from digest.models import Config
from digest.plan import plan_cycle
from digest.report import CycleRecord, CycleReport, SubscriberReport
from digest.store import Store
from digest.timing import announcements_between, local_text, next_run

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
        help="subscribers.yaml (default: $DIGEST_CONFIG, else ./subscribers.yaml)",
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
    sub.add_parser(
        "ingest",
        parents=[common],
        help="act on one reply read from standard input (an MTA pipe, procmail, fetchmail)",
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
    return p


def _setup_logging(verbose: bool) -> None:
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


def _load(args: argparse.Namespace) -> Config:
    return config.load(
        config.resolve_path(args.config, os.environ),
        origin=config.path_origin(args.config, os.environ),
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _stderr_is_tty() -> bool:
    return sys.stderr.isatty()


class _Progress:
    """A one-line progress display on a terminal; silent otherwise.

    The line is drawn with a carriage return and no newline, so anything else
    written to stderr must first erase it (``clear_all``), or the two run together.
    """

    shown_now: ClassVar[list[_Progress]] = []

    @classmethod
    def clear_all(cls) -> None:
        for progress in list(cls.shown_now):
            progress.clear()

    def __init__(self, label: str) -> None:
        self.label = label
        self.enabled = _stderr_is_tty()
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if self.enabled:
            sys.stderr.write(f"\r{self.label} {done}/{total}\x1b[K")
            sys.stderr.flush()
            self.shown = True
            if self not in _Progress.shown_now:
                _Progress.shown_now.append(self)

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            self.shown = False
        if self in _Progress.shown_now:
            _Progress.shown_now.remove(self)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Log lines on stderr that first erase a progress line in the way."""

    def emit(self, record: logging.LogRecord) -> None:
        _Progress.clear_all()
        super().emit(record)


# --------------------------------------------------------------------------
# Commands


def _writable_folder(folder: Path) -> str | None:
    """Why files cannot be created in ``folder`` (or its nearest existing parent), or None."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable by this user"
    return None


def _cannot_write(path: Path, *, folder: bool, parents: bool) -> str | None:
    """Why ``path`` (a file, or a folder to create) cannot be written, or None."""
    if path.exists():
        if path.is_dir() != folder:
            return f"{path} is {'not ' if folder else ''}a folder"
        if not os.access(path, os.W_OK):
            return f"{path} is read-only"
        return None
    if not parents and not path.parent.is_dir():
        return f"the folder {path.parent} does not exist"
    return _writable_folder(path.parent)


def check_output(
    path: Path | None, option: str, *, folder: bool = False, parents: bool = False
) -> None:
    """Before any work: an output named on the command line can be created (exit 73).

    ``parents``: missing folders on the way will be created (the archive page and
    the outbox do that); else the file's folder must exist.
    """
    if path is None:
        return
    why = _cannot_write(path, folder=folder, parents=parents)
    if why:
        raise CannotCreateError(f"{option} {path} cannot be written: {why}", path=str(path))


def check_writable(cfg: Config) -> None:
    """The database folder and the Daily Papers page must be writable (exit 78 if not)."""
    s = cfg.settings
    places = [("settings.database", s.database)]
    if s.archive is not None:
        places.append(("settings.archive", s.archive))
    for setting, path in places:
        if path.exists() and (path.is_dir() or not os.access(path, os.W_OK)):
            why: str | None = f"{path} is a folder" if path.is_dir() else f"{path} is read-only"
        else:
            why = _writable_folder(path.parent)
        if why:
            raise OutputError(
                f"{setting} {path} cannot be written: {why}", path=str(path), setting=setting
            )


def cmd_check(args: argparse.Namespace) -> int:
    cfg = _load(args)
    s = cfg.settings
    check_writable(cfg)
    keywords = {k.casefold() for sub in cfg.subscribers for k in sub.keywords}
    print(
        f"{cfg.path}: OK: {len(cfg.subscribers)} subscribers, {len(keywords)} distinct "
        f"keywords; database {s.database}; SMTP {s.smtp.host}:{s.smtp.port} ({s.smtp.security})"
    )
    if args.smtp:
        print(asyncio.run(Mailer(s.smtp).check()))
    if args.imap:
        if s.inbox is None:
            raise ConfigError(
                str(cfg.path), ["settings.inbox is not set: there is no inbox to check"]
            )
        print(inbox.check_login(s.inbox))
    return EXIT_OK


def _cycle(cfg: Config, store: Store, options: Options, hooks: Hooks) -> CycleReport:
    now = _now()

    async def go() -> CycleReport:
        async with collaborators(cfg.settings, options, now=now, hooks=hooks) as collab:
            return await run_cycle(cfg, store, collab, now=now, options=options, hooks=hooks)

    return asyncio.run(go())


def cmd_once(args: argparse.Namespace) -> int:
    cfg = _load(args)
    check_output(args.outbox, "--outbox", folder=True, parents=True)
    options = Options(
        dry_run=args.dry_run, outbox=args.outbox, only=args.subscriber, interactive=True
    )
    fetch_progress = _Progress("fetching arXiv")
    send_progress = _Progress("sending")

    def line(r: SubscriberReport) -> None:
        fetch_progress.clear()
        send_progress.clear()
        print(r.line(), file=sys.stderr)
        if r.status == "dry-run":
            # in the mail's order: most relevant first within each keyword
            for i, title in enumerate(r.titles):
                if args.verbose and i < len(r.scores):
                    print(f"  - {r.scores[i]:5.2f}  {title}")
                else:
                    print(f"  - {title}")

    hooks = Hooks(fetch_progress=fetch_progress, send_progress=send_progress, report_line=line)
    with Store.open(cfg.settings.database, readonly=args.dry_run) as store:
        report = _cycle(cfg, store, options, hooks)
    fetch_progress.clear()
    send_progress.clear()
    log.info("%s", report.summary())
    return report.exit_code


def cmd_preview(args: argparse.Namespace) -> int:
    cfg = _load(args)
    check_output(args.output, "-o")
    rendered: list[str] = []
    options = Options(dry_run=True, only=args.email, interactive=True)
    hooks = Hooks(on_composed=lambda d, r: rendered.append(r.html))
    with Store.open(cfg.settings.database, readonly=True) as store:
        _cycle(cfg, store, options, hooks)
    if not rendered:
        print(f"{args.email}: nothing new, no digest to preview", file=sys.stderr)
        return EXIT_OK
    if args.output:
        out = args.output
        try:
            # the reader's name, address and papers: owner-only, like the temporary file
            atomic.write_atomic(out, rendered[0], mode=0o600)
        except OSError as exc:
            raise CannotCreateError(f"-o {out} cannot be written: {exc}", path=str(out)) from exc
    else:
        fd, name = tempfile.mkstemp(prefix="digest-preview-", suffix=".html")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(rendered[0])
        out = Path(name)
    print(out)
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    cfg = _load(args)
    now = _now()
    if not cfg.settings.database.exists():
        print(f"no cycle has run yet (no database at {cfg.settings.database})")
        print(f"next cycle: {local_text(next_run(now, cfg.settings), cfg.settings)}")
        return EXIT_OK
    with Store.open(cfg.settings.database, readonly=True) as store:
        stored = store.last_cycle()
        if stored:
            last = CycleRecord.from_dict(stored)
            print(
                f"last cycle: {local_text(last.finished, cfg.settings)}, {last.result}: "
                f"{last.fetched} fetched, {last.new_papers} new, {last.counts_text()}"
                + (f"; {last.error}" if last.error else "")
            )
            note = quiet_cycle_note(last)
            if note:
                print(f"  {note}")
        else:
            print("last cycle: none recorded")
        print(f"next cycle: {local_text(next_run(now, cfg.settings), cfg.settings)}")
        # the planner the cycle uses, on the cache alone: status agrees with once
        before = snapshot(store, cfg.subscribers)
        plans = plan_cycle(cfg.subscribers, cfg.settings, before, (), now).plans
        for plan in plans:
            email = plan.subscriber.email
            state = before.state(email)
            skipped = (
                f", {len(state.skipped)} skipped (left out for size, not offered again)"
                if state.skipped
                else ""
            )
            chosen = readers.describe(before.reader(email), now)
            print(
                f"  {email}: {len(state.delivered)} delivered, "
                f"{len(plan.matches)} pending{skipped}" + (f"; {chosen}" if chosen else "")
            )
    return EXIT_OK


def cmd_ingest(args: argparse.Namespace) -> int:
    """One message on stdin: exit 0 (handled or ignored) or 75 (try again); never 78 or 70.

    An MTA turns any other exit into a bounce to the sender: the reader who
    clicked "unsubscribe" would get their own message back.
    """
    raw = ingest.read_message(sys.stdin.buffer)  # first: the MTA expects the whole message taken
    try:
        cfg = _load(args)
        ctx = mailroom.context(cfg.settings, os.environ)
        result = mailroom.ingest_one(raw, cfg, ctx, _now())
        if result.reply is not None:
            asyncio.run(mailroom.send_replies(cfg.settings.smtp, [result.reply]))
    except DigestError as exc:
        print(f"digest ingest: {exc} (the message will be offered again)", file=sys.stderr)
        return EXIT_TEMPFAIL
    except Exception as exc:  # a bug: the MTA keeps the message, the operator sees why
        if args.verbose:
            log.exception("unexpected error")
        print(
            f"digest ingest: unexpected error: {type(exc).__name__}: {exc} "
            "(the message will be offered again; run with -v for the traceback)",
            file=sys.stderr,
        )
        return EXIT_TEMPFAIL
    return result.exit_code


def cmd_readers(args: argparse.Namespace) -> int:
    cfg = _load(args)
    now = _now()
    if args.resume and not args.email:
        raise UsageError("--resume needs the reader's EMAIL")
    if not cfg.settings.database.exists():
        print(f"no reader has replied yet (no database at {cfg.settings.database})")
        return EXIT_OK
    configured = {s.email.casefold(): s.email for s in cfg.subscribers}
    with Store.open(cfg.settings.database, readonly=not args.resume, now=now) as store:
        stored = store.reader_states()
        if args.email is None:
            for who, doc in sorted(stored.items()):
                what = readers.describe(readers.from_dict(doc, who=who), now) or "nothing chosen"
                gone = "" if who.casefold() in configured else " (not in the configuration)"
                print(f"{who}: {what}{gone}")
            if not stored:
                print("no reader has chosen anything by reply")
            return EXIT_OK
        by_case = {e.casefold(): e for e in stored} | configured
        found = by_case.get(args.email.casefold())
        if found is None:
            raise UsageError(f"no subscriber {args.email} in {cfg.path} and no reply state stored")
        email = found
        try:
            state = readers.from_dict(stored.get(email) or {}, who=email)
            damaged = False
        except StoreCorruptError:
            if not args.resume:
                raise
            log.warning("%s: the stored reply state was damaged and starts afresh", email)
            state, damaged = readers.ReaderState(), True
        if args.resume:
            state, effects = readers.apply(state, readers.Lifted(), now)
            if effects.changed or damaged:
                store.set_reader_state(email, readers.to_dict(state))
                store.flush()
            log.info("%s: %s", email, effects.log if effects.changed else "nothing to lift")
        print(f"{email}: {readers.describe(state, now) or 'receives mail as configured'}")
    return EXIT_OK


def cmd_archive(args: argparse.Namespace) -> int:
    cfg = _load(args)
    check_output(args.output, "-o", parents=True)
    keywords = archive.keywords_in_order(cfg.subscribers)
    if not cfg.settings.database.exists():
        print(
            f"nothing to show yet: no database at {cfg.settings.database} "
            "(the page fills after the first cycle)",
            file=sys.stderr,
        )
        return EXIT_OK
    with Store.open(cfg.settings.database, readonly=True) as store:
        papers = store.papers()
        if not papers:
            print("nothing to show yet: no papers in the database", file=sys.stderr)
            return EXIT_OK
        page = archive.render(keywords, papers, _now())
    if args.output:
        archive.write_atomic(args.output, page)
    else:
        sys.stdout.write(page)
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    path = config.resolve_path(args.config, os.environ)
    return asyncio.run(Daemon(path).run())


def quiet_cycle_note(last: CycleRecord) -> str | None:
    """Whether a cycle that found nothing new is expected (no announcement) or suspicious."""
    if last.new_papers or last.result == "failed":
        return None
    if last.previous_fetch is None:
        return "the first cycle found nothing: check the keywords and settings.arxiv.api_url"
    n = announcements_between(last.previous_fetch, last.started)
    if n == 0:
        return "nothing new, as expected: arXiv made no announcement since the previous cycle"
    return (
        f"suspicious: arXiv announced {n} time{'s' if n > 1 else ''} since the previous "
        "cycle but nothing new was fetched; check the log, the keywords and "
        "settings.arxiv.api_url (an arXiv holiday would also explain it)"
    )


COMMANDS = {
    "check": cmd_check,
    "once": cmd_once,
    "preview": cmd_preview,
    "status": cmd_status,
    "run": cmd_run,
    "archive": cmd_archive,
    "ingest": cmd_ingest,
    "readers": cmd_readers,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    _setup_logging(args.verbose)
    try:
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"digest: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DigestError as exc:
        if args.verbose:
            log.exception("digest failed")
        print(f"digest: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("digest: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: say so briefly, the traceback with -v
        if args.verbose:
            log.exception("unexpected error")
        print(
            f"digest: unexpected error: {type(exc).__name__}: {exc} "
            "(run with -v for the traceback)",
            file=sys.stderr,
        )
        return EXIT_SOFTWARE
