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

import base64
import contextlib
import imaplib
import logging
import re
import ssl
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from digest.errors import InboxConfigError, InboxError
from digest.models import InboxSettings, Security

log = logging.getLogger(__name__)

Outcome = Literal["handled", "ignored", "tempfail"]
Handle = Callable[[bytes], Outcome]

HANDLED_KEYWORD = "$DigestHandled"
MAX_MESSAGE_BYTES = 1_000_000  # larger mail is no reply to a digest; it is left alone
MAX_PER_POLL = 200  # a backlog drains over several polls, each one short


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one poll did, by UID (UIDs are stable within the folder)."""

    handled: tuple[int, ...] = ()
    ignored: tuple[int, ...] = ()
    deferred: tuple[int, ...] = ()  # handle() said tempfail: untouched, tried again next poll
    failed: tuple[int, ...] = ()  # handle() raised (a bug, logged): untouched like tempfail
    oversized: tuple[int, ...] = ()  # over the size cap: untouched, never fetched
    moved: bool = True  # False when the server could only flag, not move


# --------------------------------------------------------------------------
# Pure helpers


def default_port(security: Security) -> int:
    """993 for implicit TLS (RFC 8314), 143 for plain and STARTTLS."""
    return 993 if security == "tls" else 143


def mailbox_name(name: str) -> str:
    """A folder name as an IMAP quoted string, non-ASCII in modified UTF-7 (RFC 3501 §5.1.3)."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ","))
            out.append("-")
            pending.clear()

    for ch in name:
        if " " <= ch <= "~":
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    encoded = "".join(out).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{encoded}"'


def uid_set(uids: Iterable[int]) -> str:
    return ",".join(str(u) for u in uids)


def parse_search(data: Sequence[object]) -> tuple[int, ...]:
    """``[b'3 4 7']`` (the SEARCH response) -> ``(3, 4, 7)``."""
    uids: list[int] = []
    for item in data:
        if isinstance(item, bytes):
            uids.extend(int(tok) for tok in item.split() if tok.isdigit())
    return tuple(uids)


_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")


def parse_sizes(data: Sequence[object]) -> dict[int, int]:
    """``[b'1 (UID 5 RFC822.SIZE 1234)', ...]`` -> ``{5: 1234}``; other responses are skipped."""
    sizes: dict[int, int] = {}
    for item in data:
        head = item[0] if isinstance(item, tuple) else item
        if not isinstance(head, bytes):
            continue
        uid, size = _UID.search(head), _SIZE.search(head)
        if uid and size:
            sizes[int(uid.group(1))] = int(size.group(1))
    return sizes


def parse_body(data: Sequence[object], uid: int) -> bytes | None:
    """The literal of ``UID n BODY[] {len}`` for ``uid``; None if the message is gone.

    The server may mix unsolicited FETCH responses (flag changes made by
    another client) into the answer, so the UID is checked.
    """
    for item in data:
        if not (isinstance(item, tuple) and len(item) == 2):
            continue
        head, body = item
        if not (isinstance(head, bytes) and isinstance(body, bytes)):
            continue
        m = _UID.search(head)
        if b"BODY[]" in head and m and int(m.group(1)) == uid:
            return body
    return None


def parse_capabilities(data: Sequence[object]) -> frozenset[str]:
    """``[b'IMAP4rev1 MOVE UIDPLUS']`` -> ``{'IMAP4REV1', 'MOVE', 'UIDPLUS'}``."""
    caps: set[str] = set()
    for item in data:
        if isinstance(item, bytes):
            caps.update(item.decode("ascii", "replace").upper().split())
    return frozenset(caps)


def flags_for(outcome: Outcome) -> str:
    """Handled mail is marked read; ignored mail stays unread so a human notices it."""
    return f"({HANDLED_KEYWORD} \\Seen)" if outcome == "handled" else f"({HANDLED_KEYWORD})"


# --------------------------------------------------------------------------
# I/O shell

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
        sizes = parse_sizes(data)  # a UID missing here was expunged by someone else meanwhile
        oversized = [u for u in uids if sizes.get(u, 0) > self.max_bytes]
        # Oversized mail stays in the folder for good: keep it out of the cap.
        todo = [u for u in uids if u in sizes and sizes[u] <= self.max_bytes][:MAX_PER_POLL]
        done: dict[Outcome, list[int]] = {"handled": [], "ignored": [], "tempfail": []}
        failed: list[int] = []
        for uid in todo:
            if self.should_stop():
                break
            typ, data = self.conn.uid("FETCH", str(uid), "(BODY.PEEK[])")
            raw = parse_body(data, uid)
            if raw is None:
                continue
            try:
                outcome = self.handle(raw)
            except Exception:
                # A bug in the handler must neither stop the daemon nor lose the
                # message, nor keep the rest of the folder waiting behind it.
                log.exception("inbox: handling UID %d failed; it stays in the folder", uid)
                failed.append(uid)
                continue
            if outcome not in done:
                log.error(
                    "inbox: handler answered %r for UID %d; it stays in the folder", outcome, uid
                )
                failed.append(uid)
                continue
            done[outcome].append(uid)
            if outcome != "tempfail":
                self._file(uid, outcome)
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

    def _file(self, uid: int, outcome: Outcome) -> None:
        """Flag first (so it is never handled twice), then move it out of the way."""
        self.conn.uid("STORE", str(uid), "+FLAGS.SILENT", flags_for(outcome))
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
