"""Reading replies from an IMAP mailbox (imaplib): log in, hand each new message over, file it.

The only module that imports imaplib. It is blocking on purpose (imaplib
is); the daemon runs ``poll`` in a thread with ``asyncio.to_thread``, and
``digest ingest --imap`` calls it once.

Rules, from RFC 3501/6851 and from what goes wrong with real mailboxes:

* A poll has a total deadline (``POLL_BUDGET``, or less when the daemon's
  next cycle is nearer), an idle timeout (``settings.inbox.timeout``: the
  longest silence) and gives way to a stop request within ``STOP_GRACE``
  seconds, in every phase from the name look-up to LOGOUT
  (``digest.replies.wire``): a server that never greets, or answers LOGIN
  with a line a second forever, can delay neither a cycle nor a shutdown.
* A reply is read up to ``MAX_MESSAGE_BYTES``, the limit ``digest ingest``
  applies to its standard input, so both paths act on the same bytes: the
  FETCH asks for that much (``BODY.PEEK[]<0.N>``), and a literal announced
  larger than what was asked for is refused before a byte of it is read
  (the server's ``RFC822.SIZE`` is not trusted for anything).
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

Not imapclient: it is imaplib underneath with the same one-timeout socket,
so these bounds would still have to be built on imaplib (through its private
``_create_IMAP4``), and its fuller parser serves commands digest does not
send; the few answers read here are parsed in ``digest.replies.imap``.
"""

from __future__ import annotations

import imaplib
import logging
import ssl
from collections.abc import Callable

from digest.errors import InboxConfigError, InboxError, Stopped
from digest.models import InboxSettings
from digest.replies.classify import MAX_MESSAGE_BYTES
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
)
from digest.replies.wire import STOP_GRACE, Budget, Wire

# What a caller of ``poll`` needs, in one place (the types live with the pure helpers).
__all__ = [
    "HANDLED_KEYWORD",
    "MAX_MESSAGE_BYTES",
    "MAX_PER_POLL",
    "POLL_BUDGET",
    "STOP_GRACE",
    "Filed",
    "Handle",
    "PollResult",
    "check_login",
    "poll",
]

log = logging.getLogger(__name__)

MAX_PER_POLL = 200  # a backlog drains over several polls, each one short

# The total time one poll (or ``check --imap``) may take, whatever the server
# does. A healthy poll takes a second or two; 120 s leaves room for a
# backlog of large replies over a slow link (what does not fit waits for the
# next poll: handled mail leaves the folder), while bounding how long a poll
# holds the database, which ``digest ingest`` and ``readers --resume`` then
# wait for. The daemon shortens it to end before its next cycle is due.
POLL_BUDGET = 120.0
_MAX_LINE = 1_000_000  # imaplib's own limit for a line (literals apart)
_RESERVE = 5.0  # of a poll's budget, not spent on starting another message

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


class _Connection(imaplib.IMAP4):
    """imaplib over a ``Wire``: every byte read or written under the poll's ``Budget``.

    ``open``, ``read``, ``readline``, ``send`` and ``shutdown`` are imaplib's
    documented points to override for another transport.
    """

    def __init__(self, s: InboxSettings, budget: Budget, context: ssl.SSLContext | None) -> None:
        self.inbox = s
        self.budget = budget
        self.context = context
        self.wire: Wire | None = None
        super().__init__(s.host, s.port)

    def open(
        self, host: str = "", port: int = 143, timeout: float | None = None
    ) -> None:
        self.host, self.port = host, port
        self.wire = Wire.connect(host, port, self.budget)
        if self.inbox.security == "tls":
            assert self.context is not None
            self.wire.start_tls(self.context, host)
        self.sock = self.wire.sock

    def _line(self) -> Wire:
        if self.wire is None:
            raise self.abort("not connected")
        return self.wire

    def read(self, size: int) -> bytes:
        # imaplib calls this for every literal, with the size the server announced
        if size > MAX_MESSAGE_BYTES:
            raise InboxError(
                f"{_where(self.inbox)} announced {size} bytes where at most "
                f"{MAX_MESSAGE_BYTES} bytes were asked for; the connection was dropped unread"
            )
        return self._line().read(size)

    def readline(self) -> bytes:
        line = self._line().readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise self.error(f"got more than {_MAX_LINE} bytes in one line")
        return line

    def send(self, data: object) -> None:
        self._line().sendall(bytes(data))  # type: ignore[call-overload]

    def shutdown(self) -> None:
        if self.wire is not None:
            self.wire.close()

    def start_tls(self) -> None:
        """STARTTLS (RFC 3501 §6.2.1) with the handshake on the ``Wire``; capabilities again."""
        typ, data = self.xatom("STARTTLS")
        if typ != "OK":
            raise self.error(f"STARTTLS refused: {data}")
        assert self.context is not None
        self._line().start_tls(self.context, self.host)
        self.sock = self._line().sock
        typ, data = self.capability()
        # RFC 3501: what was said before TLS is forgotten, the capabilities too
        caps = parse_capabilities(data) if typ == "OK" else frozenset()
        self.capabilities = tuple(sorted(caps))


def _connect(s: InboxSettings, budget: Budget) -> _Connection:
    ctx = _tls_context(s) if s.security != "none" else None
    try:
        conn = _Connection(s, budget, ctx)
        if s.security == "starttls":
            if "STARTTLS" not in conn.capabilities:
                conn.shutdown()
                raise InboxConfigError(
                    f"{_where(s)} does not offer STARTTLS; refusing to log in in clear text "
                    "(settings.inbox.security)"
                )
            try:
                conn.start_tls()
            except BaseException:
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


def _budget(s: InboxSettings, seconds: float, should_stop: Callable[[], bool] | None) -> Budget:
    return Budget(seconds, s.timeout, _where(s), should_stop or (lambda: False))


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
    """LOGOUT while the budget allows; the socket is closed in any case."""
    try:
        conn.logout()
    except (*_NETWORK, imaplib.IMAP4.error, InboxError, Stopped):
        pass  # the server is gone, or the poll was cut short: no time to be polite
    finally:
        conn.shutdown()


def check_login(settings: InboxSettings) -> str:
    """Log in once and open the folder read-only (``digest check --imap``), within ``POLL_BUDGET``.

    Raises ``InboxConfigError`` for what the operator must fix (login
    refused, certificate, missing folder) and ``InboxError`` for what may
    pass (unreachable, timeout).
    """
    conn = _connect(settings, _budget(settings, POLL_BUDGET, None))
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
    should_stop: Callable[[], bool] | None = None,
    budget: float = POLL_BUDGET,
) -> PollResult:
    """Hand each new message in the folder to ``handle`` once, then flag and file it.

    ``handle`` gets the first ``MAX_MESSAGE_BYTES`` of the raw RFC 5322
    message and says ``handled``, ``ignored`` (both are flagged and moved) or
    ``tempfail`` (left untouched for the next poll); if it raises, the
    message is left untouched too (``failed``). It runs in the poller's
    thread, and should be idempotent: if the connection drops between its
    return and the flagging, the next poll hands the message over again.

    The poll takes at most ``budget`` seconds: it takes no new message once
    little is left, and an exchange still going at the end is cut
    (``InboxError``). When ``should_stop`` turns true (the daemon is shutting
    down), the poll ends after the message in hand, and any exchange still
    going after ``STOP_GRACE`` seconds is cut (``Stopped``); the rest wait.

    Raises ``InboxConfigError`` (login, certificate, folder) or ``InboxError``
    (unreachable, timeout, deadline, connection lost: try again at the next poll).
    """
    limits = _budget(settings, budget, should_stop)
    conn = _connect(settings, limits)
    try:
        _login(conn, settings)
        _select(conn, settings, readonly=False)
        return _Poll(conn, settings, handle, limits).run()
    except _NETWORK as exc:
        raise InboxError(f"{_where(settings)}: connection lost during the poll: {exc}") from exc
    except imaplib.IMAP4.error as exc:  # a BAD answer: the server and we disagree on IMAP
        raise InboxError(f"{_where(settings)}: unexpected answer: {exc}") from exc
    finally:
        _logout(conn)


class _Poll:
    """One poll over a logged-in, selected connection."""

    def __init__(
        self, conn: imaplib.IMAP4, settings: InboxSettings, handle: Handle, budget: Budget
    ) -> None:
        self.conn = conn
        self.settings = settings
        self.handle = handle
        self.budget = budget
        self.caps: frozenset[str] = frozenset()
        self.destination: str | None = None  # quoted handled_folder, once it is known to exist
        self.can_move = True

    def run(self) -> PollResult:
        typ, data = self.conn.uid("SEARCH", "UNKEYWORD", HANDLED_KEYWORD)
        uids = parse_search(data) if typ == "OK" else ()
        if not uids:
            return PollResult()
        done: dict[Filed, list[int]] = {"handled": [], "ignored": [], "tempfail": []}
        failed: list[int] = []
        # time kept back to file the message in hand and log out
        reserve = min(_RESERVE, self.budget.seconds / 4)
        for uid in uids[:MAX_PER_POLL]:
            if self.budget.stopping() or self.budget.remaining() < reserve:
                break
            # at most the reply limit: the same bytes ``digest ingest`` takes from a pipe
            typ, data = self.conn.uid("FETCH", str(uid), f"(BODY.PEEK[]<0.{MAX_MESSAGE_BYTES}>)")
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
            moved=self.can_move,
        )
        log.info(
            "inbox %s: %d handled, %d ignored, %d deferred, %d failed",
            self.settings.folder,
            len(result.handled),
            len(result.ignored),
            len(result.deferred),
            len(result.failed),
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
