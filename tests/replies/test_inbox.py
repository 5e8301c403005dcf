"""The IMAP poller against a real Dovecot on 127.0.0.1; settings.inbox; the pure helpers."""

from __future__ import annotations

import io
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from digest.errors import (
    EXIT_CONFIG,
    EXIT_TEMPFAIL,
    InboxConfigError,
    InboxError,
    Stopped,
)
from digest.models import InboxSettings
from digest.replies.classify import MAX_MESSAGE_BYTES
from digest.replies.imap import mailbox_name
from digest.replies.inbox import HANDLED_KEYWORD, STOP_GRACE, Filed, check_login, poll
from digest.replies.mailroom import read_message
from tests.support.dovecot import Dovecot
from tests.support.imap_fake import FakeImap, Peer, serve_until
from tests.support.network import free_port
from tests.support.programs import needs
from tests.support.waiting import wait_for

# a real Dovecot or a scripted IMAP peer on loopback, waiting in real time
pytestmark = pytest.mark.servers

_folders = itertools.count(1)

needs_dovecot = needs("dovecot", "openssl")


def message(subject: str, size: int = 0) -> bytes:
    body = ("x" * 76 + "\r\n") * (size // 78) if size else "please unsubscribe me\r\n"
    return (
        f"From: Reader <reader@example.org>\r\nTo: papers@digest.test\r\n"
        f"Subject: {subject}\r\nMessage-ID: <{subject.replace(' ', '.')}@example.org>\r\n\r\n"
        f"{body}"
    ).encode()


def settings(imap: Dovecot, **kw: object) -> InboxSettings:
    """STARTTLS on the plain port with the test CA, into a folder of the test's own."""
    n = next(_folders)
    base = InboxSettings(
        host="127.0.0.1",
        port=imap.port,
        security="starttls",
        username=imap.user,
        password=imap.password,
        folder=f"replies{n}",
        handled_folder=f"replies{n}-handled",
        timeout=5,
        ca_file=imap.certificate,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


@pytest.fixture
def inbox(dovecot: Dovecot) -> InboxSettings:
    s = settings(dovecot)
    dovecot.create(s.folder)
    return s


class Recorder:
    """A ``handle`` that answers ``outcome`` and keeps what it was given."""

    def __init__(self, outcome: Filed = "handled") -> None:
        self.outcome: Filed = outcome
        self.seen: list[bytes] = []

    def __call__(self, raw: bytes) -> Filed:
        self.seen.append(raw)
        return self.outcome


def flags(imap: Dovecot, folder: str) -> list[frozenset[str]]:
    return [f for f, _ in imap.contents(folder)]


# --------------------------------------------------------------------------
# Logging in


@needs_dovecot
def test_check_login_over_starttls_names_the_folder(dovecot: Dovecot, inbox: InboxSettings) -> None:
    dovecot.append(inbox.folder, message("one"))
    text = check_login(inbox)
    assert f"accepted the login of {dovecot.user}" in text
    assert f"{inbox.folder} holds 1 messages" in text


@needs_dovecot
def test_refused_login_is_a_config_error_naming_the_setting(inbox: InboxSettings) -> None:
    with pytest.raises(InboxConfigError) as info:
        check_login(replace(inbox, password="wrong"))
    assert "settings.inbox.username 'reader'" in str(info.value)
    assert "DIGEST_IMAP_PASSWORD" in str(info.value)
    assert info.value.exit_code == EXIT_CONFIG


@needs_dovecot
def test_missing_password_is_a_config_error_saying_where_it_goes(inbox: InboxSettings) -> None:
    with pytest.raises(InboxConfigError, match="DIGEST_IMAP_PASSWORD or the systemd credential"):
        check_login(replace(inbox, password=None))


@needs_dovecot
def test_implicit_tls_with_the_ca_file_logs_in(dovecot: Dovecot, inbox: InboxSettings) -> None:
    tls = replace(inbox, security="tls", port=dovecot.tls_port)
    assert "(tls) accepted the login" in check_login(tls)


@needs_dovecot
@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_self_signed_certificate_without_ca_file_is_refused(
    dovecot: Dovecot, inbox: InboxSettings, security: str
) -> None:
    port = dovecot.tls_port if security == "tls" else dovecot.port
    with pytest.raises(InboxConfigError, match=r"not trusted.*settings\.inbox\.ca_file"):
        check_login(replace(inbox, security=security, port=port, ca_file=None))  # type: ignore[arg-type]


@needs_dovecot
def test_starttls_never_falls_back_to_clear_text() -> None:
    with Dovecot(ssl_mode="no") as plain:
        s = settings(plain)
        with pytest.raises(InboxConfigError, match="does not offer STARTTLS"):
            check_login(s)
        log = plain.wait_for_log("no auth attempts")
    assert "Login: user=<reader>" not in log


@needs_dovecot
def test_missing_folder_is_a_config_error_naming_the_folder(dovecot: Dovecot) -> None:
    s = settings(dovecot)  # its folder was never created
    with pytest.raises(InboxConfigError, match=f"settings.inbox.folder '{s.folder}'"):
        poll(s, Recorder())


def test_unreachable_server_is_a_temporary_error() -> None:
    s = InboxSettings(
        host="127.0.0.1", port=free_port(), security="none", username="u", password="p", timeout=2
    )
    with pytest.raises(InboxError) as info:
        check_login(s)
    assert not isinstance(info.value, InboxConfigError)
    assert info.value.exit_code == EXIT_TEMPFAIL


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections and never says a word (a hung server)."""
    srv = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(srv.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield srv.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    for conn in accepted:
        conn.close()
    srv.close()


@pytest.mark.parametrize("security", ["none", "tls"])
def test_a_silent_server_times_out_as_a_temporary_error(silent_server: int, security: str) -> None:
    s = InboxSettings(
        host="127.0.0.1",
        port=silent_server,
        security=security,  # type: ignore[arg-type]
        username="u",
        password="p",
        timeout=0.3,
    )
    with pytest.raises(InboxError) as info:
        poll(s, Recorder())
    assert not isinstance(info.value, InboxConfigError)


# --------------------------------------------------------------------------
# Servers that answer, but never finish: the poll's deadline, the stop, the size cap


def dribble_at_login(peer: Peer) -> None:
    """Greets, then answers LOGIN with an untagged line every second and never a result."""
    if serve_until(peer, lambda rest: rest.upper().startswith(b"LOGIN")):
        peer.dribble(1.0)


def trickle_the_body(peer: Peer) -> None:
    """Answers up to the FETCH of a body, then sends the literal a byte a second."""
    cmd = serve_until(peer, lambda rest: b"BODY" in rest.upper())
    if cmd and peer.send(b"* 1 FETCH (UID 1 BODY[] {500}\r\n"):
        while not peer.closing.wait(1.0) and peer.send(b"x"):
            pass


PHASES = {"greeting": Peer.idle, "login": dribble_at_login, "fetch": trickle_the_body}


def fake_settings(port: int, **kw: object) -> InboxSettings:
    base = InboxSettings(
        host="127.0.0.1", port=port, security="none", username="u", password="p", timeout=30
    )
    return replace(base, **kw)  # type: ignore[arg-type]


class PollThread:
    """``poll`` in a thread, as the daemon runs it; what it returned or raised, and when."""

    def __init__(self, s: InboxSettings, **kw: object) -> None:
        self.outcome: object = None
        self.ended_at: float | None = None
        self.started_at = time.monotonic()
        self.thread = threading.Thread(target=self._run, args=(s, kw), daemon=True)
        self.thread.start()

    def _run(self, s: InboxSettings, kw: dict[str, object]) -> None:
        try:
            self.outcome = poll(s, Recorder(), **kw)  # type: ignore[arg-type]
        except BaseException as exc:
            self.outcome = exc
        self.ended_at = time.monotonic()

    def join(self, timeout: float) -> float:
        """Seconds the poll took; fails the test if it is still running after ``timeout``."""
        self.thread.join(timeout)
        assert self.ended_at is not None, f"the poll was still running after {timeout} s"
        return self.ended_at - self.started_at


@pytest.mark.parametrize("phase", PHASES)
def test_a_stop_ends_the_poll_within_seconds_in_every_phase(phase: str) -> None:
    stop = threading.Event()
    with FakeImap(PHASES[phase]) as srv:
        running = PollThread(fake_settings(srv.port), should_stop=stop.is_set)
        time.sleep(1.5)  # well into the phase (the body's first byte is out)
        stop.set()
        asked = time.monotonic()
        running.join(timeout=20)
    assert running.ended_at is not None and running.ended_at - asked < STOP_GRACE + 1
    assert isinstance(running.outcome, Stopped), running.outcome


@pytest.mark.parametrize("phase", PHASES)
def test_a_poll_ends_at_its_deadline_in_every_phase(phase: str) -> None:
    # The per-operation timeout (30 s) never fires: the server is never silent that long.
    with FakeImap(PHASES[phase]) as srv:
        running = PollThread(fake_settings(srv.port), budget=2.0)
        took = running.join(timeout=20)
    assert 1.5 < took < 3.5
    assert isinstance(running.outcome, InboxError), running.outcome
    assert "did not finish within 2 s" in str(running.outcome)


def test_a_literal_far_larger_than_asked_for_is_refused_unread() -> None:
    # The server says 500 bytes (RFC822.SIZE), then announces 64 MiB for the body.
    def huge(peer: Peer) -> None:
        if serve_until(peer, lambda rest: b"BODY" in rest.upper()):
            peer.send(b"* 1 FETCH (UID 1 BODY[] {%d}\r\n" % (64 << 20))
            chunk = b"x" * 65536
            while peer.sent < (64 << 20) and peer.send(chunk):
                pass

    handle = Recorder()
    with FakeImap(huge) as srv:
        with pytest.raises(InboxError, match="at most 1048576 bytes were asked for"):
            poll(fake_settings(srv.port, timeout=5), handle, budget=20)
        (peer,) = srv.peers
        assert wait_for(lambda: peer.sent > 0, timeout=5)
        time.sleep(0.3)
        sent = peer.sent
    assert handle.seen == []
    assert sent < 8 << 20  # what the socket buffers took, not the 64 MiB


# --------------------------------------------------------------------------
# Polling


@needs_dovecot
def test_handled_messages_are_flagged_read_and_moved(
    dovecot: Dovecot, inbox: InboxSettings
) -> None:
    raws = [message("one"), message("two")]
    for raw in raws:
        dovecot.append(inbox.folder, raw)
    handle = Recorder("handled")
    result = poll(inbox, handle)
    assert [r.replace(b"\r\n", b"\n") for r in handle.seen] == [
        r.replace(b"\r\n", b"\n") for r in raws
    ]
    assert len(result.handled) == 2 and result.moved
    assert dovecot.contents(inbox.folder) == []
    assert flags(dovecot, inbox.handled_folder) == [frozenset({HANDLED_KEYWORD, "\\Seen"})] * 2


@needs_dovecot
def test_ignored_messages_are_moved_unread_never_deleted(
    dovecot: Dovecot, inbox: InboxSettings
) -> None:
    dovecot.append(inbox.folder, message("hello, a question"))
    result = poll(inbox, Recorder("ignored"))
    assert len(result.ignored) == 1
    ((kept_flags, kept),) = dovecot.contents(inbox.handled_folder)
    assert kept_flags == frozenset({HANDLED_KEYWORD})
    assert b"Subject: hello, a question" in kept


@needs_dovecot
def test_tempfail_leaves_the_message_untouched_for_the_next_poll(
    dovecot: Dovecot, inbox: InboxSettings
) -> None:
    dovecot.append(inbox.folder, message("unsubscribe"))
    first = poll(inbox, Recorder("tempfail"))
    assert len(first.deferred) == 1
    assert flags(dovecot, inbox.folder) == [frozenset()]  # not even \Seen
    again = Recorder("handled")
    second = poll(inbox, again)
    assert len(again.seen) == 1 and second.handled == first.deferred


@needs_dovecot
def test_a_handler_that_raises_leaves_its_message_and_goes_on(
    dovecot: Dovecot, inbox: InboxSettings
) -> None:
    dovecot.append(inbox.folder, message("poison"))
    dovecot.append(inbox.folder, message("unsubscribe"))

    def handle(raw: bytes) -> Filed:
        if b"poison" in raw:
            raise ValueError("a bug in the handler")
        return "handled"

    result = poll(inbox, handle)
    assert len(result.failed) == 1 and len(result.handled) == 1
    ((left_flags, left),) = dovecot.contents(inbox.folder)
    assert left_flags == frozenset() and b"Subject: poison" in left


@needs_dovecot
def test_should_stop_ends_the_poll_after_the_message_in_hand(
    dovecot: Dovecot, inbox: InboxSettings
) -> None:
    for n in range(3):
        dovecot.append(inbox.folder, message(f"reply {n}"))
    handle = Recorder("handled")
    result = poll(inbox, handle, should_stop=lambda: len(handle.seen) >= 1)
    assert len(result.handled) == 1
    assert len(dovecot.contents(inbox.folder)) == 2  # the rest wait for the next poll


@needs_dovecot
def test_a_reply_over_the_size_limit_is_acted_on_from_the_same_bytes_as_on_the_pipe(
    dovecot: Dovecot, inbox: InboxSettings
) -> None:
    # One limit for both paths: a 3 MB reply (a quoted digest with an image) is
    # read from its first MAX_MESSAGE_BYTES, as ``digest ingest`` reads stdin.
    big = message("unsubscribe with a photo", size=3_000_000)
    dovecot.append(inbox.folder, big)
    handle = Recorder("handled")
    result = poll(inbox, handle)
    assert len(result.handled) == 1
    (seen,) = handle.seen
    assert len(seen) == MAX_MESSAGE_BYTES
    stored = dovecot.contents(inbox.handled_folder)[0][1]
    assert seen == read_message(io.BytesIO(stored))
    assert dovecot.contents(inbox.folder) == []


@needs_dovecot
def test_message_already_read_by_a_human_is_handled_once(
    dovecot: Dovecot, inbox: InboxSettings
) -> None:
    dovecot.append(inbox.folder, message("unsubscribe"), flags="\\Seen")
    first, second = Recorder("handled"), Recorder("handled")
    poll(inbox, first)
    poll(inbox, second)
    assert len(first.seen) == 1 and second.seen == []


@needs_dovecot
def test_message_flagged_handled_but_not_moved_is_not_handled_again(
    dovecot: Dovecot, inbox: InboxSettings
) -> None:
    # What is left behind when the server can neither MOVE nor UIDPLUS.
    dovecot.append(inbox.folder, message("done before"), flags=HANDLED_KEYWORD)
    handle = Recorder()
    assert poll(inbox, handle).handled == () and handle.seen == []


@needs_dovecot
def test_handled_folder_with_a_non_ascii_name_is_created(
    dovecot: Dovecot, inbox: InboxSettings
) -> None:
    s = replace(inbox, handled_folder=f"Erledigt & gelöscht {inbox.folder}")
    dovecot.append(s.folder, message("one"))
    poll(s, Recorder())
    assert len(dovecot.contents(mailbox_name(s.handled_folder)[1:-1])) == 1


@needs_dovecot
def test_without_move_only_the_handled_uid_is_expunged() -> None:
    # No MOVE advertised: COPY + \Deleted + UID EXPUNGE. A message a human
    # marked \Deleted (but did not expunge) must survive.
    caps = "IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE IDLE UIDPLUS NAMESPACE"
    with Dovecot(extra=f"imap_capability = {caps}\n") as imap:
        s = settings(imap)
        imap.create(s.folder)
        imap.append(s.folder, message("binned by a human"), flags="\\Deleted")
        imap.append(s.folder, message("unsubscribe"))
        handle = Recorder("handled")
        handle_human = Recorder("tempfail")

        def answer(raw: bytes) -> Filed:
            return (handle_human if b"binned" in raw else handle)(raw)

        result = poll(s, answer)
        assert len(result.handled) == 1 and result.moved
        ((left_flags, left),) = imap.contents(s.folder)
        assert "\\Deleted" in left_flags and b"binned by a human" in left
        ((_, moved),) = imap.contents(s.handled_folder)
        assert b"Subject: unsubscribe" in moved


@needs_dovecot
def test_server_disappearing_mid_poll_is_a_temporary_error() -> None:
    with Dovecot() as imap:
        s = settings(imap)
        imap.create(s.folder)
        for n in range(3):
            imap.append(s.folder, message(f"reply {n}"))
        calls: list[bytes] = []

        def handle(raw: bytes) -> Filed:
            calls.append(raw)
            imap.crash()
            return "handled"

        with pytest.raises(InboxError) as info:
            poll(s, handle)
    assert not isinstance(info.value, InboxConfigError)
    assert "connection lost" in str(info.value) and len(calls) == 1
