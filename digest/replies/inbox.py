"""Reading replies from an IMAP mailbox (imaplib): log in, hand each new message over, file it.

The only module that imports imaplib. It is blocking on purpose (imaplib
is); the daemon runs ``poll`` in a thread with ``asyncio.to_thread``.

Rules, from RFC 3501/6851 and from what goes wrong with real mailboxes:

* Every socket operation has ``settings.timeout`` (imaplib sets it on the
  socket, and the TLS socket inherits it), so a silent server cannot hang
  the daemon.
* Certificates are always verified; ``starttls`` fails when the server does
  not offer STARTTLS instead of logging in in clear text.
* A message is handled once: the keyword ``$DigestHandled`` marks it, so a
  human reading it first (``\\Seen``) neither hides it nor makes it come
  back. Messages are fetched with ``BODY.PEEK[]``, which leaves ``\\Seen``
  alone, so a message whose handling failed for now stays as it was.
* Nothing is deleted that was not first copied: handled and ignored mail is
  moved to ``handled_folder`` with MOVE (RFC 6851), else COPY + ``\\Deleted``
  + ``UID EXPUNGE`` of that one UID (UIDPLUS, RFC 4315: a plain EXPUNGE
  would also remove what a human marked deleted), else only flagged.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import ssl
from collections.abc import Callable

from digest.errors import InboxConfigError, InboxError
from digest.models import InboxSettings
from digest.replies.imap import (
    HANDLED_KEYWORD,
    Filed,
    Handle,
    PollResult,
    flags_for,
    mailbox_name,
    parse_body,
    parse_capabilities,
    parse_search,
    parse_sizes,
    triage,
    uid_set,
)

# What a caller of ``poll`` needs, in one place (the types live with the pure helpers).
__all__ = [
    "HANDLED_KEYWORD",
    "MAX_MESSAGE_BYTES",
    "MAX_PER_POLL",
    "Filed",
    "Handle",
    "PollResult",
    "check_login",
    "poll",
]

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 1_000_000  # larger mail is no reply to a digest; it is left alone
MAX_PER_POLL = 200  # a backlog drains over several polls, each one short

# imaplib's own errors: IMAP4.abort (connection lost) is a subclass of IMAP4.error.
_NETWORK = (OSError, TimeoutError, imaplib.IMAP4.abort)


def _where(s: InboxSettings) -> str:
    return f"{s.host}:{s.port} ({s.security})"


def _tls_context(s: InboxSettings) -> ssl.SSLContext:
    try:
        if s.ca_file is not None:
            return ssl.create_default_context(cafile=str(s.ca_file))
        return ssl.create_default_context()
    except (OSError, ssl.SSLError) as exc:
        raise InboxConfigError(f"settings.inbox.ca_file {s.ca_file}: cannot load: {exc}") from exc


def _connect(s: InboxSettings) -> imaplib.IMAP4:
    ctx = _tls_context(s) if s.security != "none" else None
    try:
        if s.security == "tls":
            return imaplib.IMAP4_SSL(s.host, s.port, ssl_context=ctx, timeout=s.timeout)
        conn = imaplib.IMAP4(s.host, s.port, timeout=s.timeout)
        if s.security == "starttls":
            if "STARTTLS" not in conn.capabilities:
                conn.shutdown()
                raise InboxConfigError(
                    f"{_where(s)} does not offer STARTTLS; refusing to log in in clear text "
                    "(settings.inbox.security)"
                )
            try:
                conn.starttls(ctx)
            except BaseException:
                with contextlib.suppress(OSError):  # ssl already closed a failed handshake
                    conn.shutdown()
                raise
        return conn
    except ssl.SSLCertVerificationError as exc:
        raise InboxConfigError(
            f"{_where(s)}: the server's certificate is not trusted ({exc.verify_message}); "
            "for a private CA set settings.inbox.ca_file"
        ) from exc
    except (*_NETWORK, imaplib.IMAP4.error) as exc:
        raise InboxError(f"cannot connect to {_where(s)}: {exc or type(exc).__name__}") from exc


def _login(conn: imaplib.IMAP4, s: InboxSettings) -> None:
    if not s.password:
        raise InboxConfigError(
            f"no IMAP password for settings.inbox.username {s.username!r}: set "
            "DIGEST_IMAP_PASSWORD or the systemd credential imap-password"
        )
    try:
        if "AUTH=PLAIN" in conn.capabilities:
            # AUTHENTICATE PLAIN carries UTF-8; LOGIN's quoted strings are ASCII only.
            secret = f"\0{s.username}\0{s.password}".encode()
            conn.authenticate("PLAIN", lambda _challenge: secret)
        else:
            conn.login(s.username, s.password)
    except UnicodeEncodeError as exc:
        raise InboxConfigError(
            f"{_where(s)} offers only LOGIN, which cannot carry a non-ASCII "
            "settings.inbox.username or password"
        ) from exc
    except imaplib.IMAP4.abort as exc:
        raise InboxError(f"{_where(s)} dropped the connection at login: {exc}") from exc
    except imaplib.IMAP4.error as exc:
        text = str(exc)
        if "UNAVAILABLE" in text.upper():  # RFC 5530: the server, not the password, is the problem
            raise InboxError(f"{_where(s)} cannot log in now: {text}") from exc
        raise InboxConfigError(
            f"{_where(s)} refused the login of settings.inbox.username {s.username!r}: {text}; "
            "check the username and the password (DIGEST_IMAP_PASSWORD or the credential "
            "imap-password)"
        ) from exc


def _select(conn: imaplib.IMAP4, s: InboxSettings, *, readonly: bool) -> int:
    typ, data = conn.select(mailbox_name(s.folder), readonly=readonly)
    if typ != "OK":
        reason = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
        raise InboxConfigError(
            f"{_where(s)}: cannot open settings.inbox.folder {s.folder!r}: {reason}"
        )
    first = data[0] if data else None
    return int(first) if isinstance(first, bytes) and first.isdigit() else 0


def _logout(conn: imaplib.IMAP4) -> None:
    try:
        conn.logout()  # closes the socket even when the server is gone
    except (*_NETWORK, imaplib.IMAP4.error):
        pass


def check_login(settings: InboxSettings) -> str:
    """Log in once and open the folder read-only (``digest check --imap``).

    Raises ``InboxConfigError`` for what the operator must fix (login
    refused, certificate, missing folder) and ``InboxError`` for what may
    pass (unreachable, timeout).
    """
    conn = _connect(settings)
    try:
        _login(conn, settings)
        count = _select(conn, settings, readonly=True)
    except _NETWORK as exc:
        raise InboxError(f"{_where(settings)}: connection lost: {exc}") from exc
    except imaplib.IMAP4.error as exc:  # a BAD answer: the server and we disagree on IMAP
        raise InboxError(f"{_where(settings)}: unexpected answer: {exc}") from exc
    finally:
        _logout(conn)
    return (
        f"{_where(settings)} accepted the login of {settings.username}; "
        f"{settings.folder} holds {count} messages"
    )


def poll(
    settings: InboxSettings,
    handle: Handle,
    *,
    max_bytes: int = MAX_MESSAGE_BYTES,
    should_stop: Callable[[], bool] | None = None,
) -> PollResult:
    """Hand each new message in the folder to ``handle`` once, then flag and file it.

    ``handle`` gets the raw RFC 5322 bytes and says ``handled``, ``ignored``
    (both are flagged and moved) or ``tempfail`` (left untouched for the next
    poll); if it raises, the message is left untouched too (``failed``). It
    runs in the poller's thread, and should be idempotent: if the connection
    drops between its return and the flagging, the next poll hands the
    message over again. When ``should_stop`` turns true (the daemon is
    shutting down), the poll ends after the message in hand; the rest wait.

    Raises ``InboxConfigError`` (login, certificate, folder) or ``InboxError``
    (unreachable, timeout, connection lost: try again at the next poll).
    """
    conn = _connect(settings)
    try:
        _login(conn, settings)
        _select(conn, settings, readonly=False)
        return _Poll(conn, settings, handle, max_bytes, should_stop).run()
    except _NETWORK as exc:
        raise InboxError(f"{_where(settings)}: connection lost during the poll: {exc}") from exc
    except imaplib.IMAP4.error as exc:  # a BAD answer: the server and we disagree on IMAP
        raise InboxError(f"{_where(settings)}: unexpected answer: {exc}") from exc
    finally:
        _logout(conn)


class _Poll:
    """One poll over a logged-in, selected connection."""

    def __init__(
        self,
        conn: imaplib.IMAP4,
        settings: InboxSettings,
        handle: Handle,
        max_bytes: int,
        should_stop: Callable[[], bool] | None,
    ) -> None:
        self.conn = conn
        self.settings = settings
        self.handle = handle
        self.max_bytes = max_bytes
        self.should_stop = should_stop or (lambda: False)
        self.caps: frozenset[str] = frozenset()
        self.destination: str | None = None  # quoted handled_folder, once it is known to exist
        self.can_move = True

    def run(self) -> PollResult:
        typ, data = self.conn.uid("SEARCH", "UNKEYWORD", HANDLED_KEYWORD)
        uids = parse_search(data) if typ == "OK" else ()
        if not uids:
            return PollResult()
        typ, data = self.conn.uid("FETCH", uid_set(uids), "(RFC822.SIZE)")
        todo, oversized = triage(uids, parse_sizes(data), self.max_bytes, MAX_PER_POLL)
        done: dict[Filed, list[int]] = {"handled": [], "ignored": [], "tempfail": []}
        failed: list[int] = []
        for uid in todo:
            if self.should_stop():
                break
            typ, data = self.conn.uid("FETCH", str(uid), "(BODY.PEEK[])")
            raw = parse_body(data, uid)
            if raw is None:
                continue
            try:
                filed = self.handle(raw)
            except Exception:
                # A bug in the handler must neither stop the daemon nor lose the
                # message, nor keep the rest of the folder waiting behind it.
                log.exception("inbox: handling UID %d failed; it stays in the folder", uid)
                failed.append(uid)
                continue
            if filed not in done:
                log.error(
                    "inbox: handler answered %r for UID %d; it stays in the folder", filed, uid
                )
                failed.append(uid)
                continue
            done[filed].append(uid)
            if filed != "tempfail":
                self._file(uid, filed)
        result = PollResult(
            handled=tuple(done["handled"]),
            ignored=tuple(done["ignored"]),
            deferred=tuple(done["tempfail"]),
            failed=tuple(failed),
            oversized=tuple(oversized),
            moved=self.can_move,
        )
        log.info(
            "inbox %s: %d handled, %d ignored, %d deferred, %d failed, %d over %d bytes left alone",
            self.settings.folder,
            len(result.handled),
            len(result.ignored),
            len(result.deferred),
            len(result.failed),
            len(result.oversized),
            self.max_bytes,
        )
        return result

    def _file(self, uid: int, filed: Filed) -> None:
        """Flag first (so it is never handled twice), then move it out of the way."""
        self.conn.uid("STORE", str(uid), "+FLAGS.SILENT", flags_for(filed))
        dest = self._destination()
        if dest is None:
            return
        if "MOVE" in self.caps:
            typ, data = self.conn.uid("MOVE", str(uid), dest)
        else:
            typ, data = self.conn.uid("COPY", str(uid), dest)
            if typ == "OK":
                self.conn.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Deleted)")
                typ, data = self.conn.uid("EXPUNGE", str(uid))
        if typ != "OK":
            log.warning("inbox: could not move UID %d to %s: %s", uid, dest, data)

    def _destination(self) -> str | None:
        """The quoted handled folder, created on first use; None when mail can only be flagged."""
        if self.destination is not None or not self.can_move:
            return self.destination
        typ, data = self.conn.capability()
        self.caps = parse_capabilities(data) if typ == "OK" else frozenset()
        if "MOVE" not in self.caps and "UIDPLUS" not in self.caps:
            log.warning("inbox: the server has neither MOVE nor UIDPLUS; handled mail is flagged")
            self.can_move = False
            return None
        dest = mailbox_name(self.settings.handled_folder)
        typ, data = self.conn.list('""', dest)
        if typ != "OK" or not any(isinstance(d, bytes) for d in data):
            typ, data = self.conn.create(dest)
            if typ != "OK":
                log.warning(
                    "inbox: cannot create settings.inbox.handled_folder %r (%s); "
                    "handled mail is flagged, not moved",
                    self.settings.handled_folder,
                    data,
                )
                self.can_move = False
                return None
            self.conn.subscribe(dest)  # so mail clients show it
            log.info("inbox: created folder %s", self.settings.handled_folder)
        self.destination = dest
        return dest
