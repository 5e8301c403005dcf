"""A client socket that gives way: every wait bounded by a deadline, silence and a stop request.

imaplib gives its socket one timeout per operation. That bounds a silent
server, but not a slow one: a server that sends ``* OK`` every second during
LOGIN satisfies every read within its timeout and keeps the poll (and so the
daemon's next cycle, and its shutdown) waiting forever; and a stop request
cannot reach a thread blocked in ``recv``. Here every wait, from the name
look-up to the last byte of LOGOUT, is a ``select`` of at most ``SLICE``
seconds, after which the ``Budget`` is asked whether to go on: the poll's
total deadline, the idle timeout (``settings.inbox.timeout``, silence since
the last byte) and the stop request (honoured after ``STOP_GRACE`` seconds,
time enough to file the message in hand and log out).

The socket is non-blocking throughout, with TLS done by hand
(``do_handshake`` and ``SSLWant*Error``), as the ssl module documents for
non-blocking sockets.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from digest.errors import InboxError, Stopped

SLICE = 0.25  # longest single wait: a stop is seen within this
STOP_GRACE = 2.0  # after a stop request, for the exchange in hand (filing a message, LOGOUT)
_CHUNK = 1 << 16

# what socket.getaddrinfo returns for one address: family, type, proto, name, address
AddressInfo = tuple[Any, ...]


@dataclass
class Budget:
    """How long one exchange with a server may go on; mutable only to note when a stop came."""

    seconds: float  # the total deadline, from creation
    idle: float  # the longest silence (settings.inbox.timeout)
    where: str  # the server, for messages: "host:port (security)"
    should_stop: Callable[[], bool] = lambda: False
    monotonic: Callable[[], float] = time.monotonic
    grace: float = STOP_GRACE
    deadline: float = field(init=False)
    stop_seen: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.deadline = self.monotonic() + self.seconds

    def remaining(self) -> float:
        return self.deadline - self.monotonic()

    def stopping(self) -> bool:
        """Whether a stop was requested (remembered: the grace counts from the first sight)."""
        if self.stop_seen is None and self.should_stop():
            self.stop_seen = self.monotonic()
        return self.stop_seen is not None

    def wait(self, quiet_since: float) -> float:
        """How long the next wait may be; raises when the exchange must give way now.

        ``quiet_since``: when the server last sent (or took) a byte.
        """
        now = self.monotonic()
        limit = min(SLICE, self.deadline - now, quiet_since + self.idle - now)
        if self.stopping():
            assert self.stop_seen is not None
            limit = min(limit, self.stop_seen + self.grace - now)
            if limit <= 0:
                raise Stopped(f"stopping: the exchange with {self.where} was interrupted")
        if now >= self.deadline:
            raise InboxError(
                f"{self.where}: the poll did not finish within {self.seconds:g} s "
                "(the server answers too slowly); what is left waits for the next poll"
            )
        if now >= quiet_since + self.idle:
            raise InboxError(
                f"{self.where}: no answer for {self.idle:g} s (settings.inbox.timeout)"
            )
        return max(limit, 0.0)


class Wire:
    """A connected, non-blocking socket (plain or TLS) read and written under a ``Budget``."""

    def __init__(self, sock: socket.socket, budget: Budget) -> None:
        self.sock = sock
        self.budget = budget
        self._buffer = bytearray()

    @classmethod
    def connect(cls, host: str, port: int, budget: Budget) -> Wire:
        """Resolve and connect, trying each address; ``OSError`` when none answers."""
        last: OSError = OSError(errno.EHOSTUNREACH, f"no address for {host}")
        for family, kind, proto, _, addr in _resolve(host, port, budget):
            sock = socket.socket(family, kind, proto)
            try:
                sock.setblocking(False)
                code = sock.connect_ex(addr)
                if code in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
                    wire = cls(sock, budget)
                    wire._wait(write=True, since=budget.monotonic())
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code == 0:
                    return cls(sock, budget)
                last = OSError(code, f"{errno.errorcode.get(code, code)} connecting to {addr}")
            except BaseException:
                sock.close()
                raise
            sock.close()
        raise last

    def start_tls(self, context: ssl.SSLContext, hostname: str) -> None:
        """The TLS handshake, bounded like every other wait; ``context`` verifies the server."""
        if self._buffer:
            # bytes the server sent after its STARTTLS answer and before the handshake
            # would be read as if they came over TLS (CVE-2011-0411's class of attack)
            raise InboxError(f"{self.budget.where}: sent data before the TLS handshake")
        tls = context.wrap_socket(
            self.sock, server_hostname=hostname, do_handshake_on_connect=False
        )
        self.sock = tls
        since = self.budget.monotonic()
        while True:
            try:
                tls.do_handshake()
                return
            except ssl.SSLWantReadError:
                self._wait(write=False, since=since)
            except ssl.SSLWantWriteError:
                self._wait(write=True, since=since)

    def readline(self, limit: int) -> bytes:
        """Up to and including the next LF, at most ``limit`` bytes; less only at end of stream."""
        while True:
            end = self._buffer.find(b"\n", 0, limit)
            if end >= 0:
                return self._take(end + 1)
            if len(self._buffer) >= limit or not self._fill():
                return self._take(min(limit, len(self._buffer)))

    def read(self, size: int) -> bytes:
        """Exactly ``size`` bytes; less only at end of stream."""
        while len(self._buffer) < size and self._fill():
            pass
        return self._take(min(size, len(self._buffer)))

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        since = self.budget.monotonic()
        while view:
            try:
                sent = self.sock.send(view)
            except (BlockingIOError, ssl.SSLWantWriteError):
                self._wait(write=True, since=since)
                continue
            except ssl.SSLWantReadError:
                self._wait(write=False, since=since)
                continue
            view = view[sent:]
            since = self.budget.monotonic()

    def close(self) -> None:
        with contextlib.suppress(OSError):  # already gone
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def _take(self, n: int) -> bytes:
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out

    def _fill(self) -> bool:
        """Some more bytes into the buffer; False at end of stream."""
        since = self.budget.monotonic()
        while True:
            try:
                chunk = self.sock.recv(_CHUNK)
            except (BlockingIOError, ssl.SSLWantReadError):
                self._wait(write=False, since=since)
                continue
            except ssl.SSLWantWriteError:  # a TLS renegotiation wants to write first
                self._wait(write=True, since=since)
                continue
            self._buffer += chunk
            return bool(chunk)

    def _wait(self, *, write: bool, since: float) -> None:
        """Until the socket is ready, in slices; the budget raises when time is up."""
        event = selectors.EVENT_WRITE if write else selectors.EVENT_READ
        with selectors.DefaultSelector() as selector:
            selector.register(self.sock, event)
            while not selector.select(self.budget.wait(since)):
                pass


def _resolve(host: str, port: int, budget: Budget) -> Sequence[AddressInfo]:
    """``getaddrinfo`` in a helper thread, so that a slow resolver gives way like the rest.

    The thread cannot be cancelled; left behind, it ends when the resolver gives up.
    """
    answer: list[Sequence[AddressInfo] | OSError] = []
    done = threading.Event()

    def look_up() -> None:
        try:
            answer.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            answer.append(exc)
        finally:
            done.set()

    threading.Thread(target=look_up, name=f"resolve {host}", daemon=True).start()
    since = budget.monotonic()
    while not done.wait(budget.wait(since)):
        pass
    (result,) = answer
    if isinstance(result, OSError):
        raise result
    return result
