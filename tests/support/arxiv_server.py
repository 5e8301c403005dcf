"""A loopback HTTP server that answers like the arXiv query API.

It serves *recorded* arXiv Atom (tests/fixtures/): the entries of the chosen
fixture files are cut out as bytes and re-paged according to ``start`` and
``max_results``, under the fixture's own feed header with the opensearch
counts set to match. Like the old Daily Papers pages' server, it returns
the same papers whatever the query, so local matching is really tested.

Faults can be queued: each request takes the next one, then it answers
normally again. Every request is logged with its time (monotonic).
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import re
import threading
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from tests.support.paths import FIXTURES

_ENTRY = re.compile(rb"<entry>.*?</entry>\s*", re.S)


def load_entries(names: Iterable[str]) -> tuple[bytes, list[bytes]]:
    """The feed header of the first fixture and every entry of all of them (raw bytes)."""
    header = b""
    entries: list[bytes] = []
    for name in names:
        data = (FIXTURES / name).read_bytes()
        found = _ENTRY.findall(data)
        if not header:
            first = _ENTRY.search(data)
            header = data[: first.start()] if first else data.split(b"</feed>")[0]
        entries.extend(found)
    return header, entries


def redate(entry: bytes, when: datetime) -> bytes:
    """Give a recorded entry a recent submission time (the window is days wide)."""
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    entry = re.sub(
        rb"<published>[^<]*</published>", b"<published>" + stamp + b"</published>", entry
    )
    return re.sub(rb"<updated>[^<]*</updated>", b"<updated>" + stamp + b"</updated>", entry)


def make_entry(
    paper_id: str,
    title: str,
    abstract: str,
    *,
    version: int = 1,
    authors: Iterable[str] = ("A. Author",),
    categories: Iterable[str] = ("cs.LG",),
    comment: str | None = None,
    published: datetime | None = None,
) -> bytes:
    """An entry in arXiv's layout for hostile or made-up content (XML-escaped here)."""
    from xml.sax.saxutils import escape

    when = (published or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    cats = list(categories)
    parts = [
        "<entry>",
        f"<id>http://arxiv.org/abs/{paper_id}v{version}</id>",
        f"<title>{escape(title)}</title>",
        f"<updated>{when}</updated>",
        f'<link href="https://arxiv.org/abs/{paper_id}v{version}" rel="alternate"/>',
        f"<summary>{escape(abstract)}</summary>",
        *(f'<category term="{c}" scheme="http://arxiv.org/schemas/atom"/>' for c in cats),
        f"<published>{when}</published>",
        *([f"<arxiv:comment>{escape(comment)}</arxiv:comment>"] if comment else []),
        f'<arxiv:primary_category term="{cats[0]}"/>',
        *(f"<author><name>{escape(a)}</name></author>" for a in authors),
        "</entry>\n",
    ]
    return "\n".join(parts).encode()


_ID = re.compile(rb"<id>https?://arxiv.org/abs/(.+?)v(\d+)</id>")


def by_ids(entries: list[bytes], ids: list[str]) -> list[bytes]:
    """What arXiv answers to id_list: the newest version of each listed paper."""
    newest: dict[str, tuple[int, bytes]] = {}
    for e in entries:
        m = _ID.search(e)
        if m and m.group(1).decode() in ids:
            key, version = m.group(1).decode(), int(m.group(2))
            if key not in newest or newest[key][0] < version:
                newest[key] = (version, e)
    return [newest[i][1] for i in ids if i in newest]


@dataclass
class Request:
    at: float
    params: dict[str, str]
    user_agent: str


@dataclass
class ArxivState:
    header: bytes
    entries: list[bytes]
    faults: list[str] = field(default_factory=list)
    # papers that only an id_list lookup finds (an old paper a reader likes)
    by_id_only: list[bytes] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    delay: float = 0.0
    trickle_interval: float = 0.05  # seconds between the bytes of a "trickle" answer
    max_url: int | None = None  # a longer request target is answered 414, like a front end
    in_flight: int = 0
    max_in_flight: int = 0  # the most requests ever being answered at once

    def page(self, start: int, size: int, id_list: str | None = None) -> bytes:
        entries = (
            self.entries
            if not id_list
            else by_ids([*self.entries, *self.by_id_only], id_list.split(","))
        )
        chunk = entries[start : start + size]
        header = self.header
        header = re.sub(rb"(<opensearch:totalResults[^>]*>)\d+", rb"\g<1>%d" % len(entries), header)
        header = re.sub(rb"(<opensearch:startIndex[^>]*>)\d+", rb"\g<1>%d" % start, header)
        header = re.sub(rb"(<opensearch:itemsPerPage[^>]*>)\d+", rb"\g<1>%d" % size, header)
        return header + b"".join(chunk) + b"</feed>\n"


@functools.cache
def gzip_bomb(inflated: int) -> bytes:
    """``inflated`` bytes of zeros, gzip-compressed (about a thousandth of that on the wire)."""
    z = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(1 << 20)
    parts = [z.compress(block) for _ in range(inflated >> 20)]
    return b"".join([*parts, z.flush()])


class AtomHandler(BaseHTTPRequestHandler):
    """Answers with Atom bodies and logs nothing (keeps test output clean)."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(
        self,
        status: int,
        body: bytes,
        ctype: str = "application/atom+xml",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype + "; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        with contextlib.suppress(OSError):  # the client went away (or was killed)
            self.wfile.write(body)

    def _trickle(
        self, body: bytes, interval: float, *, claim: int | None = None, for_at_most: float = 60.0
    ) -> None:
        """A valid answer, one byte every ``interval`` seconds, until the client leaves.

        ``claim`` is the Content-Length to announce instead of the true one.
        """
        self.send_response(200)
        self.send_header("Content-Type", "application/atom+xml; charset=utf-8")
        self.send_header("Content-Length", str(len(body) if claim is None else claim))
        self.end_headers()
        end = time.monotonic() + for_at_most
        with contextlib.suppress(OSError):
            for i in range(len(body)):
                if time.monotonic() > end:
                    break
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
                time.sleep(interval)
        self.close_connection = True


class _Handler(AtomHandler):
    server: _Server

    def do_GET(self) -> None:
        state = self.server.state
        with self.server.lock:
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            self._answer(state)
        finally:
            with self.server.lock:
                state.in_flight -= 1

    def _answer(self, state: ArxivState) -> None:
        query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        with self.server.lock:
            state.requests.append(
                Request(time.monotonic(), query, self.headers.get("User-Agent", ""))
            )
            fault = state.faults.pop(0) if state.faults else None
        start = int(query.get("start", 0))
        size = int(query.get("max_results", 10))
        if state.max_url is not None and len(self.path) > state.max_url:
            return self._send(414, b"URI Too Long", "text/plain")
        if fault == "503":
            return self._send(503, b"Service Unavailable", "text/plain", {"Retry-After": "0"})
        if fault == "429":
            return self._send(429, b"Too Many Requests", "text/plain")
        if fault == "hang":
            time.sleep(2.0)
            return self._send(200, state.page(start, size, query.get("id_list")))
        if fault == "error400":
            return self._send(
                400,
                (FIXTURES / "api_new_2026-04_error_http-400_incorrect-id-format.xml").read_bytes(),
            )
        body = state.page(start, size, query.get("id_list"))
        if fault == "trickle":
            return self._trickle(body, state.trickle_interval)
        if fault == "gzip":  # a whole page, compressed as arXiv may send it
            return self._send(200, gzip.compress(body), headers={"Content-Encoding": "gzip"})
        if fault == "gzip-bomb":  # 64 KB on the wire, 64 MB inflated
            bomb = gzip_bomb(64 << 20)
            return self._send(200, bomb, headers={"Content-Encoding": "gzip"})
        if fault == "huge-length":  # claims a gigabyte, then sends it slowly
            return self._trickle(body, state.trickle_interval, claim=1 << 30)
        if fault == "endless":  # no Content-Length, and 8 MB: more than any page weighs
            return self._send_unsized(body, padding=8 << 20)
        if fault == "empty":
            body = state.header + b"</feed>\n"  # 200, the header's totals, no entries
        elif fault == "truncated":
            body = body[: len(body) // 2]
        elif fault == "blank":
            body = b""
        if state.delay:
            time.sleep(state.delay)
        self._send(200, body)

    def _send_unsized(self, body: bytes, padding: int) -> None:
        # HTTP/1.0 without Content-Length: the body ends when the connection closes
        self.send_response(200)
        self.send_header("Content-Type", "application/atom+xml; charset=utf-8")
        self.end_headers()
        block = b" " * (64 << 10)  # written a block at a time: the server's memory stays small
        with contextlib.suppress(OSError):
            self.wfile.write(body)
            for _ in range(padding // len(block)):
                self.wfile.write(block)
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: ArxivState
    lock: threading.Lock


class ArxivServer:
    """Context manager: ``with ArxivServer(header, entries) as srv: srv.url``."""

    def __init__(self, header: bytes, entries: list[bytes], port: int = 0) -> None:
        self.state = ArxivState(header, entries)
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.state = self.state
        self._server.lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/api/query"

    def __enter__(self) -> ArxivServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def recent_entries(
    names: Iterable[str], now: datetime | None = None, spacing: timedelta = timedelta(hours=1)
) -> tuple[bytes, list[bytes]]:
    """Fixture entries re-dated to the last hours, newest first."""
    now = now or datetime.now(UTC)
    header, entries = load_entries(names)
    return header, [redate(e, now - spacing * (i + 1)) for i, e in enumerate(entries)]


def main(argv: list[str] | None = None) -> None:
    """``python -m tests.support.arxiv_server``: try digest with no arXiv at hand.

    Serves recorded answers re-dated to the last hours on 127.0.0.1, until Ctrl-C;
    point digest at the printed URL with ``DIGEST_ARXIV_API_URL``.
    """
    import argparse

    p = argparse.ArgumentParser(prog="python -m tests.support.arxiv_server")
    p.add_argument("--port", type=int, default=8008)
    p.add_argument(
        "fixtures", nargs="*", default=["api_new_2026-04_all-testing_start-0_max-100.xml"]
    )
    args = p.parse_args(argv)
    header, entries = recent_entries(args.fixtures, spacing=timedelta(minutes=20))
    with ArxivServer(header, entries, port=args.port) as server:
        print(f"serving {len(entries)} recorded papers at {server.url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
