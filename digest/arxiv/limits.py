"""How long and how large one arXiv answer may be, and reading it within those bounds (pure).

Nothing that comes from arXiv is trusted to end by itself or to be the size
it says: httpx's timeout bounds each wait for a byte, not the whole answer,
and its decoders inflate a gzip body without limit (a 1 MB gzip of zeros
becomes 256 MB). ``Body`` takes the raw bytes as they arrive and stops at
the cap, before and after decompression.
"""

from __future__ import annotations

import zlib

from digest.arxiv.feed import MalformedPage

# Each wait (connect, headers, every read) gets ``settings.arxiv.timeout``;
# the whole answer gets this many of them: one to connect and hear the
# headers, the rest for the body. An ordinary page of 1000 entries (~2.5 MB)
# arrives in seconds; arXiv's manual says its largest answers (30000
# results, ~15 MB) took about 2 minutes, which 4 x the default 30 s covers.
DEADLINE_FACTOR = 4

# Recorded answers weigh 1.9-2.6 KB per entry and under 1 KB of feed header;
# an entry listing a large collaboration's ~3,000 authors weighs over 100 KB.
# 16 KB per entry on average plus 1 MB is six times an ordinary page with
# room for dozens of such entries, and keeps the default page of 1000
# entries under 17 MB (feedparser then needs a few times that).
ENTRY_BYTES = 16 * 1024
HEADER_BYTES = 1024 * 1024

# what we ask for, and so all we accept (httpx would also offer br and zstd
# when their packages happen to be installed)
ACCEPT_ENCODING = "gzip, deflate"
_INFLATED = ("gzip", "x-gzip", "deflate")


def answer_deadline(timeout: float) -> float:
    """Seconds one request may take from sending it to the last byte of its answer."""
    return DEADLINE_FACTOR * timeout


def max_answer_bytes(page_size: int) -> int:
    """How many bytes an answer to a page of ``page_size`` entries may weigh, inflated or not."""
    return HEADER_BYTES + page_size * ENTRY_BYTES


class TooLarge(ValueError):
    """The answer is over its cap; the message says how it showed (announced, sent, inflated)."""


class Body:
    """An answer's body, collected chunk by chunk as it arrives, never past ``cap`` bytes.

    The same cap applies on the wire and inflated: gzip never makes XML
    larger, so a real compressed page is far below it on the wire.
    """

    def __init__(self, cap: int, content_encoding: str | None, content_length: str | None) -> None:
        self.cap = cap
        encoding = (content_encoding or "identity").strip().lower()
        if encoding not in (*_INFLATED, "identity"):
            # several codings stacked ("gzip, gzip") are refused too
            raise MalformedPage(f"Content-Encoding {encoding[:40]!r} was not asked for")
        # 32 + MAX_WBITS: zlib reads a gzip or a zlib header, whichever it is
        self._inflate = zlib.decompressobj(32 + zlib.MAX_WBITS) if encoding in _INFLATED else None
        announced = int(content_length) if content_length and content_length.isdigit() else 0
        if announced > cap:
            raise TooLarge(f"announces {announced:,} bytes, more than {cap:,}")
        self._received = 0
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> None:
        self._received += len(chunk)
        if self._received > self.cap:
            raise TooLarge(f"sends more than {self.cap:,} bytes")
        if self._inflate is None:
            self._keep(chunk)
            return
        data = chunk
        try:
            while data:
                # never more than one byte past the cap at a time, however dense the input
                self._keep(self._inflate.decompress(data, self.cap - self._size + 1))
                data = self._inflate.unconsumed_tail
        except zlib.error as exc:
            raise MalformedPage(f"the compressed body is damaged ({exc})") from exc

    def finish(self) -> bytes:
        if self._inflate is not None:
            try:
                self._keep(self._inflate.flush())
            except zlib.error as exc:
                raise MalformedPage(f"the compressed body is damaged ({exc})") from exc
        return b"".join(self._parts)

    def _keep(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self.cap:
            raise TooLarge(f"inflates to more than {self.cap:,} bytes")
        if data:
            self._parts.append(data)
