"""The ``digest`` commands that do the work: check, once, preview, ingest, archive, run, restore.

Each takes the parsed arguments and returns an exit code; ``digest.cli.entry``
parses and maps errors to exit codes. Only these commands, ``digest.cli.status``
and the daemon read the real clock (``datetime.now`` here).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from digest import atomic, config, replies
from digest.cli.terminal import ProgressLine
from digest.cli.writable import check_output, check_writable
from digest.compose import archive
from digest.cycle import (
    CycleReport,
    Hooks,
    Options,
    SubscriberReport,
    collaborators,
    local_text,
    run_cycle,
)
from digest.errors import EXIT_OK, EXIT_TEMPFAIL, CannotCreateError, ConfigError, DigestError
from digest.mail import Mailer
from digest.models import Config
from digest.service import Daemon
from digest.store import Restored, Store

log = logging.getLogger("digest")


def cmd_check(args: argparse.Namespace) -> int:
    cfg = config.load_named(args.config, os.environ)
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
        print(replies.check_login(s.inbox))
    return EXIT_OK


def _cycle(cfg: Config, store: Store, options: Options, hooks: Hooks) -> CycleReport:
    now = datetime.now(UTC)

    async def go() -> CycleReport:
        async with collaborators(cfg.settings, options, now=now, hooks=hooks) as collab:
            return await run_cycle(cfg, store, collab, now=now, options=options, hooks=hooks)

    return asyncio.run(go())


def cmd_once(args: argparse.Namespace) -> int:
    cfg = config.load_named(args.config, os.environ)
    check_output(args.outbox, "--outbox", folder=True, parents=True)
    options = Options(
        dry_run=args.dry_run, outbox=args.outbox, only=args.subscriber, interactive=True
    )
    fetch_progress = ProgressLine("fetching arXiv")
    send_progress = ProgressLine("sending")

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
    cfg = config.load_named(args.config, os.environ)
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


def cmd_ingest(args: argparse.Namespace) -> int:
    """One message on stdin: exit 0 (handled or ignored) or 75 (try again); never 78 or 70.

    An MTA turns any other exit into a bounce to the sender: the reader who
    clicked "unsubscribe" would get their own message back.
    """
    raw = replies.read_message(sys.stdin.buffer)  # first: the MTA expects the whole message taken
    try:
        cfg = config.load_named(args.config, os.environ)
        ctx = replies.reply_context(cfg.settings, os.environ)
        result = replies.ingest_one(raw, cfg, ctx, datetime.now(UTC))
        if result.reply is not None:
            asyncio.run(replies.send_replies(cfg.settings.smtp, [result.reply]))
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


def cmd_archive(args: argparse.Namespace) -> int:
    cfg = config.load_named(args.config, os.environ)
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
        page = archive.render(keywords, papers, datetime.now(UTC))
    if args.output:
        archive.write_atomic(args.output, page)
    else:
        sys.stdout.write(page)
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    path = config.resolve_path(args.config, os.environ)
    return asyncio.run(Daemon(path).run())


def cmd_restore(args: argparse.Namespace) -> int:
    """Put an unreadable database back together and say what, if anything, goes out again."""
    cfg = config.load_named(args.config, os.environ)
    db = cfg.settings.database
    done = Store.restore(db, datetime.now(UTC))
    if not done.rebuilt:
        print(f"the database {db} and its journal read: nothing to restore")
        return EXIT_OK
    print(_restored(done, cfg))
    if not done.lost:
        print("nothing will be sent again: every change recorded since was replayed")
        return EXIT_OK
    for why in done.lost:
        print(f"not replayed: {why}")
    since = local_text(done.backup_taken, cfg.settings) if done.backup_taken else "then"
    print(
        f"what was delivered after {since} and not replayed will be sent again; the next "
        "cycle will send, from what arXiv lists now:"
    )
    try:
        with Store.open(db, readonly=True) as store:
            report = _cycle(cfg, store, Options(dry_run=True, interactive=True), Hooks())
    except DigestError as exc:
        print(f"  (not known now: {exc}; digest once --dry-run shows it)")
        return EXIT_OK
    owed = [r for r in report.subscribers if r.status == "dry-run" and r.papers]
    for r in owed:
        print(f"  {r.email}: {r.papers} paper{'' if r.papers == 1 else 's'}")
    if not owed:
        print("  nothing")
    return EXIT_OK


def _restored(done: Restored, cfg: Config) -> str:
    db = cfg.settings.database
    if done.from_backup and done.backup_taken is not None:
        taken = local_text(done.backup_taken, cfg.settings)
        text = f"restored {db} from the backup taken {taken}, replaying "
        text += f"{done.replayed} changes recorded since"
    else:
        text = f"restored {db}, replaying {done.replayed} changes of its journal"
    if done.kept:
        text += f"; the unreadable files are kept as {', '.join(map(str, done.kept))}"
    return text
