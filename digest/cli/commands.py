"""The ``digest`` commands that do the work: check, once, preview, ingest, archive, run, secret,
restore.

Each takes the parsed arguments and returns an exit code; ``digest.cli.entry``
parses and maps errors to exit codes. Only these commands, ``digest.cli.status``
and the daemon read the real clock (``datetime.now`` here).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from digest import arxiv, atomic, config, ranking, replies
from digest.cli.terminal import ProgressLine, log_to_syslog
from digest.cli.writable import check_output, check_owner, check_writable
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
from digest.replies import ReplySecret
from digest.service import Daemon
from digest.store import Restored, Store

log = logging.getLogger("digest")


def cmd_check(args: argparse.Namespace) -> int:
    cfg = config.load_named(args.config, os.environ)
    s = cfg.settings
    check_writable(cfg)
    # keywords the cycle leaves out (serving everybody else), and logins with no
    # password: here the operator hears of them
    problems = [f"{u}: shorten it" for u in arxiv.unfit_terms(cfg.subscribers, s.arxiv)]
    problems += config.missing_passwords(s)
    if problems:
        raise ConfigError(str(cfg.path), problems)
    smtp = asyncio.run(Mailer(s.smtp).check()) if args.smtp else None
    # readers whose digest would fail every cycle are problems; how the others'
    # internationalised addresses will be sent is said beside the summary
    notes, problems = config.address_report(cfg, smtp.smtputf8 if smtp else None)
    if problems:
        raise ConfigError(str(cfg.path), problems)
    if s.semantic:
        ranking.load_semantic()  # MissingExtraError (78): before anything says OK
    keywords = {k.casefold() for sub in cfg.subscribers for k in sub.keywords}
    print(
        f"{cfg.path}: OK: {len(cfg.subscribers)} subscribers, {len(keywords)} distinct "
        f"keywords; database {s.database}; SMTP {s.smtp.host}:{s.smtp.port} ({s.smtp.security})"
    )
    for note in notes:
        print(f"  {note}")
    if s.semantic:
        print("  ranking reads meaning too (settings.semantic): the model loads")
    if smtp is not None:
        print(smtp.text)
    if args.imap:
        if s.inbox is None:
            raise ConfigError(
                str(cfg.path), ["settings.inbox is not set: there is no inbox to check"]
            )
        print(replies.check_login(s.inbox))
    return EXIT_OK


def _cycle(cfg: Config, store: Store, options: Options, hooks: Hooks) -> CycleReport:
    now = datetime.now(UTC)
    # A dry run's links are never mailed: a key of its own, so that it creates no
    # reply secret (run as root before the service's first cycle, that file would
    # be root's, and every cycle of the service would then fail on it).
    secret = ReplySecret(secrets.token_bytes(32)) if options.dry_run else None

    async def go() -> CycleReport:
        async with collaborators(
            cfg.settings, options, now=now, hooks=hooks, secret=secret
        ) as collab:
            return await run_cycle(cfg, store, collab, now=now, options=options, hooks=hooks)

    return asyncio.run(go())


def cmd_once(args: argparse.Namespace) -> int:
    cfg = config.load_named(args.config, os.environ)
    if not args.dry_run:
        check_owner(cfg)
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
        report = _cycle(cfg, store, options, hooks)
    if not rendered:
        failed = report.not_delivered()
        if failed:  # their digest could not be made (their library, a template): say why
            print(failed[0].line(), file=sys.stderr)
            return report.exit_code
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
    clicked "unsubscribe" would get their own message back. With ``--imap``
    no MTA is involved: one poll of the inbox, with the usual exit codes.
    """
    log_to_syslog()
    if args.imap:
        return _ingest_imap(args)
    raw = replies.read_message(sys.stdin.buffer)  # first: the MTA expects the whole message taken
    try:
        cfg = config.load_named(args.config, os.environ)
        check_owner(cfg)
        ctx = replies.reply_context(cfg.settings, os.environ)
        result = replies.ingest_one(raw, cfg, ctx, datetime.now(UTC))
        if result.reply is not None:
            asyncio.run(replies.send_replies(cfg.settings.smtp, [result.reply]))
    except DigestError as exc:
        log.warning("ingest: %s (the message will be offered again)", exc)
        return EXIT_TEMPFAIL
    except Exception as exc:  # a bug: the MTA keeps the message, the operator sees why
        if args.verbose:
            log.exception("unexpected error")
        log.error(
            "ingest: unexpected error: %s: %s (the message will be offered again; "
            "run with -v for the traceback)",
            type(exc).__name__,
            exc,
        )
        return EXIT_TEMPFAIL
    return result.exit_code


def _ingest_imap(args: argparse.Namespace) -> int:
    """``ingest --imap``: what the daemon does between cycles, once (75: the server; 78: config)."""
    cfg = config.load_named(args.config, os.environ)
    if cfg.settings.inbox is None:
        raise ConfigError(str(cfg.path), ["settings.inbox is not set: there is no inbox to poll"])
    check_owner(cfg)
    ctx = replies.reply_context(cfg.settings, os.environ)
    _, answers = replies.poll_inbox(cfg, ctx, lambda: datetime.now(UTC))
    asyncio.run(replies.send_replies(cfg.settings.smtp, answers))
    return EXIT_OK


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


def cmd_secret(args: argparse.Namespace) -> int:
    """``digest secret rotate``: new links get a new key; the old ones still unsubscribe."""
    cfg = config.load_named(args.config, os.environ)
    path, kept = replies.rotate_secret(cfg.settings, os.environ)
    print(
        f"{path}: a new reply key signs the links of the next digests; the {kept} earlier "
        f"key{'s' if kept != 1 else ''} kept there still unsubscribe from older digests"
    )
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    check_owner(config.load_named(args.config, os.environ))  # the daemon loads it again
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
