"""A scripted IMAP peer on 127.0.0.1, for servers that misbehave in ways Dovecot never does.

One listening socket; each connection is played by ``script(peer)`` in a
thread. Scripts answer the few commands the poller sends (``serve_until``)
and then misbehave: never greet, dribble untagged lines forever, announce a
literal far larger than what was asked for. Everything the peer waits for
is bounded, and closing the server closes every connection, so a client
stuck on one is released when the test ends.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

GREETING = b"* OK [CAPABILITY IMAP4rev1] scripted peer ready\r\n"


class Peer:
    """One client connection, seen from the server's side."""

    def __init__(self, sock: socket.socket, closing: threading.Event) -> None:
        self.sock = sock
        self.closing = closing
        self.sent = 0  # bytes the client accepted
        self.commands: list[bytes] = []
        self._buffer = b""
        sock.settimeout(0.2)

    def send(self, data: bytes) -> bool:
        """Send all of ``data``; False once the client is gone or the server closes."""
        view = memoryview(data)
        while view and not self.closing.is_set():
            try:
                n = self.sock.send(view)
            except TimeoutError:
                continue
            except OSError:
                return False
            self.sent += n
            view = view[n:]
        return not view

    def command(self) -> tuple[bytes, bytes] | None:
        """The next command line as (tag, rest); None once the client is gone."""
        while b"\r\n" not in self._buffer:
            if self.closing.is_set():
                return None
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return None
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        self.commands.append(line)
        tag, _, rest = line.partition(b" ")
        return tag, rest

    def idle(self) -> None:
        """Say nothing until the server closes."""
        self.closing.wait(60)

    def dribble(self, every: float) -> None:
        """An untagged ``* OK`` line every ``every`` seconds, until the client goes away."""
        while not self.closing.wait(every):
            if not self.send(b"* OK still working on it\r\n"):
                return


Answer = Callable[[bytes, bytes], bytes | None]


def plain_answers(tag: bytes, rest: bytes) -> bytes | None:
    """What a small honest server says to the commands before the FETCH of a body."""
    verb = rest.split(b" ", 1)[0].upper()
    if verb == b"CAPABILITY":
        return b"* CAPABILITY IMAP4rev1\r\n" + tag + b" OK done\r\n"
    if verb == b"LOGIN":
        return tag + b" OK logged in\r\n"
    if verb == b"SELECT":
        return b"* 1 EXISTS\r\n" + tag + b" OK [READ-WRITE] selected\r\n"
    if verb == b"LOGOUT":
        return b"* BYE\r\n" + tag + b" OK bye\r\n"
    if rest.upper().startswith(b"UID SEARCH"):
        return b"* SEARCH 1\r\n" + tag + b" OK done\r\n"
    if rest.upper().startswith(b"UID FETCH") and b"RFC822.SIZE" in rest.upper():
        return b"* 1 FETCH (UID 1 RFC822.SIZE 500)\r\n" + tag + b" OK done\r\n"
    return None


def serve_until(peer: Peer, stop_at: Callable[[bytes], bool]) -> tuple[bytes, bytes] | None:
    """Greet, answer plainly, and return the first command ``stop_at`` picks (None: gone)."""
    if not peer.send(GREETING):
        return None
    while (cmd := peer.command()) is not None:
        tag, rest = cmd
        if stop_at(rest):
            return cmd
        answer = plain_answers(tag, rest)
        if answer is None:
            peer.send(tag + b" BAD not scripted\r\n")
        elif not peer.send(answer):
            return None
    return None


class FakeImap:
    """``with FakeImap(script) as srv``: ``srv.port`` on 127.0.0.1; ``srv.peers`` as they came."""

    def __init__(self, script: Callable[[Peer], None]) -> None:
        self.script = script
        self.peers: list[Peer] = []
        self.closing = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> FakeImap:
        self._acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self._acceptor.join(5)
        for peer in self.peers:
            with contextlib.suppress(OSError):
                peer.sock.shutdown(socket.SHUT_RDWR)
            peer.sock.close()
        for t in self._threads:
            t.join(5)
        self._listener.close()

    def _accept(self) -> None:
        while not self.closing.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            peer = Peer(sock, self.closing)
            self.peers.append(peer)
            t = threading.Thread(target=self._play, args=(peer,), daemon=True)
            self._threads.append(t)
            t.start()

    def _play(self, peer: Peer) -> None:
        with contextlib.suppress(OSError):
            self.script(peer)

