"""A loopback arXiv API server whose every request can be scripted to misbehave.

It serves recorded Atom entries (tests/fixtures/) re-paged by ``start`` and
``max_results``, whatever the query (local matching decides, as in
production). ``faults`` maps a request number (1-based, retries included) to
a fault; ``on_request`` is called with the request number as each request
arrives, before it is answered, so a test can kill or signal the client at
that exact moment without any hook inside digest.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import formatdate
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from tests.support.arxiv_server import AtomHandler, gzip_bomb

# Every fault this server knows; the tests name them.
FAULTS = (
    "503",  # Service Unavailable, no Retry-After
    "503-retry-after",  # ... with Retry-After: 1
    "429",  # Too Many Requests, no Retry-After
    "429-retry-after",  # ... with Retry-After: 1
    "503-retry-after-60",  # 503 with Retry-After: 60 (a long back-off)
    "reset",  # the connection is closed without an answer
    "timeout",  # nothing at all until long after the client's timeout
    "stall",  # headers and half the body, then silence
    "truncated",  # 200 with half the XML
    "html200",  # an HTML error page with status 200
    "empty",  # 200, the true totals, no entries (arxiv.py #43)
    "ignore-query",  # an unrelated answer: other (old) papers, their own totals
    "grow",  # three new submissions arrive before this page: totalResults grows
    "shrink",  # two papers vanish before this page: totalResults shrinks
    "hold",  # answer normally, but only after ``hold_seconds``
    "trickle",  # a whole answer, one byte every ``trickle_interval`` seconds
    "gzip-bomb",  # 1 MB of gzip that inflates to 256 MB
)

HTML_ERROR = (
    b"<!DOCTYPE html><html><head><title>arXiv is down for maintenance</title></head>"
    b"<body><h1>We are sorry</h1><p>Please try again later.</p></body></html>"
)


@dataclass
class Served:
    number: int
    params: dict[str, str]
    fault: str | None


@dataclass
class ArxivScript:
    header: bytes
    entries: list[bytes]  # what arXiv currently holds, newest first
    foreign: list[bytes] = field(default_factory=list)  # served by "ignore-query"
    fresh: list[bytes] = field(default_factory=list)  # pushed to the front by "grow"
    faults: dict[int, str] = field(default_factory=dict)
    on_request: Callable[[int], None] | None = None
    hold_seconds: float = 3.0
    trickle_interval: float = 0.25
    client_timeout: float = 2.0
    # a longer request target is answered 414 URI Too Long, as common front ends do
    max_url: int = 8192
    # the server's clock, as its Date header gives it: the real one moved by
    # ``date_offset`` (to agree with a client run under faketime), or no Date at all
    date_offset: timedelta = timedelta(0)
    send_date: bool = True
    served: list[Served] = field(default_factory=list)
    # every entry ever served as part of arXiv's holdings (the checker's universe)
    ever: list[bytes] = field(default_factory=list)

    def head(self, total: int, start: int, size: int) -> bytes:
        header = self.header
        header = re.sub(rb"(<opensearch:totalResults[^>]*>)\d+", rb"\g<1>%d" % total, header)
        header = re.sub(rb"(<opensearch:startIndex[^>]*>)\d+", rb"\g<1>%d" % start, header)
        return re.sub(rb"(<opensearch:itemsPerPage[^>]*>)\d+", rb"\g<1>%d" % size, header)

    def page(self, entries: list[bytes], start: int, size: int) -> bytes:
        chunk = b"".join(entries[start : start + size])
        return self.head(len(entries), start, size) + chunk + b"</feed>\n"


class _Handler(AtomHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, like arXiv

    def date_time_string(self, timestamp: float | None = None) -> str:
        when = time.time() if timestamp is None else timestamp
        return formatdate(when + self.server.script.date_offset.total_seconds(), usegmt=True)

    def send_response(self, code: int, message: str | None = None) -> None:
        if self.server.script.send_date:
            return super().send_response(code, message)
        self.log_request(code)  # the stdlib's, without its Date header
        self.send_response_only(code, message)
        self.send_header("Server", self.version_string())
        return None

    def do_GET(self) -> None:
        script = self.server.script
        params = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        with self.server.lock:
            number = len(script.served) + 1
            fault = script.faults.get(number)
            script.served.append(Served(number, params, fault))
            if fault == "grow":
                script.entries[:0] = script.fresh
                script.ever.extend(script.fresh)
            elif fault == "shrink":
                del script.entries[:2]
        if script.on_request is not None:
            script.on_request(number)
        start = int(params.get("start", 0))
        size = int(params.get("max_results", 10))
        body = script.page(script.entries, start, size)
        if len(self.path) > script.max_url:
            return self._send(414, b"URI Too Long", "text/plain")
        if fault in ("503", "429"):
            return self._send(int(fault), b"busy", "text/plain")
        if fault in ("503-retry-after", "429-retry-after", "503-retry-after-60"):
            wait = fault.rsplit("-", 1)[1] if fault.endswith("60") else "1"
            return self._send(int(fault[:3]), b"busy", "text/plain", {"Retry-After": wait})
        if fault == "reset":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(2)
            return None
        if fault == "timeout":
            time.sleep(script.client_timeout + 1.5)
        elif fault == "hold":
            time.sleep(script.hold_seconds)
        elif fault == "stall":
            self.send_response(200)
            self.send_header("Content-Type", "application/atom+xml; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(OSError):
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
            time.sleep(script.client_timeout + 1.5)
            self.close_connection = True
            return None
        elif fault == "truncated":
            body = body[: len(body) // 2]
        elif fault == "trickle":
            return self._trickle(body, script.trickle_interval)
        elif fault == "gzip-bomb":
            return self._send(200, gzip_bomb(256 << 20), headers={"Content-Encoding": "gzip"})
        elif fault == "html200":
            return self._send(200, HTML_ERROR, "text/html")
        elif fault == "empty":
            body = script.head(len(script.entries), start, size) + b"</feed>\n"
        elif fault == "ignore-query":
            body = script.page(script.foreign, 0, size)
        return self._send(200, body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    script: ArxivScript
    lock: threading.Lock

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client killed mid-answer is the point of these tests, not an error


class FaultArxiv:
    """``with FaultArxiv(script) as arxiv: arxiv.url``; stops by itself on exit."""

    def __init__(self, script: ArxivScript) -> None:
        self.script = script
        script.ever.extend(script.entries)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.script = script
        self._server.lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}/api/query"

    @property
    def requests(self) -> int:
        return len(self.script.served)

    def __enter__(self) -> FaultArxiv:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
