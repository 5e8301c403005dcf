"""Asking the arXiv API: paging, politeness, retries, timeouts, bounded answers (httpx).

arXiv's API terms of use: "make no more than one request every three
seconds, and limit requests to a single connection at a time". One client
with one connection, and a limiter that spaces *every* request, retries
included, by ``request_interval``. The clock and the sleep are injected so
tests never wait for real.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from digest import __version__
from digest.arxiv.feed import MalformedPage, Page, parse_page
from digest.arxiv.limits import ACCEPT_ENCODING, Body, TooLarge, answer_deadline, max_answer_bytes
from digest.arxiv.query import id_batches, id_page_params, page_params
from digest.errors import ArxivQueryError, FetchError
from digest.models import ArxivSettings, Paper, newest_versions
from digest.stop import Stop

log = logging.getLogger(__name__)


def user_agent(contact: str | None) -> str:
    """Name, version and the operator's contact, as arXiv asks of API clients.

    Never a third party's address: arXiv should reach whoever runs this copy.
    """
    agent = f"daily-papers-digest/{__version__}"
    return f"{agent} ({contact})" if contact else agent


# arXiv caps start + max_results at 30000 (arXiv API User's Manual).
MAX_OFFSET = 30000
# Back-off after a failure: base * 2**attempt seconds, with jitter, capped.
BACKOFF_BASE = 5.0
BACKOFF_CAP = 120.0

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]
WallClock = Callable[[], datetime]
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class IdLookup:
    """A request by ``id_list`` (comma-joined versionless ids) instead of a search."""

    ids: str


class _Retryable(Exception):
    """One attempt failed in a way that another attempt may cure."""

    def __init__(
        self, reason: str, retry_after: float | None = None, status: int | None = None
    ) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.status = status


@dataclass
class FetchStats:
    requests: int = 0
    retries: int = 0
    pages: int = 0
    entries: int = 0
    answered: int = 0  # requests that got any HTTP answer
    # the last answer's Date header and our wall clock when it came (the cycle's clock check)
    server_date: datetime | None = None
    server_date_seen: datetime | None = None


class Limiter:
    """At least ``interval`` seconds between the starts of any two requests."""

    def __init__(self, interval: float, clock: Clock, sleep: Sleep) -> None:
        self.interval = interval
        self.clock = clock
        self.sleep = sleep
        self._last: float | None = None

    async def wait(self, at_least: float = 0.0) -> None:
        gap = self.interval
        if at_least > 0:
            gap = max(gap, at_least)
        if self._last is not None:
            remaining = self._last + gap - self.clock()
            if remaining > 0:
                await self.sleep(remaining)
        elif at_least > 0:
            await self.sleep(at_least)
        self._last = self.clock()


def _wall_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    headers: httpx.Headers
    body: bytes


def _retry_after(headers: httpx.Headers, now: datetime) -> float | None:
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - now).total_seconds())


def _date(headers: httpx.Headers) -> datetime | None:
    try:
        when = parsedate_to_datetime(headers.get("Date", ""))
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)  # HTTP dates are GMT


class ArxivClient:
    """Fetches every page of the given queries; one instance per cycle."""

    def __init__(
        self,
        settings: ArxivSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        wall_clock: WallClock = _wall_now,
        rng: random.Random | None = None,
        stop: Stop | None = None,
        fail_fast: bool = False,
    ) -> None:
        self.settings = settings
        # Someone is waiting at a terminal: a name that does not resolve or a
        # refused connection before arXiv ever answered is not worth minutes
        # of back-off. The daemon keeps its patience (fail_fast=False).
        self.fail_fast = fail_fast
        # every wait and every request gives way to a stop request (SIGTERM)
        self.stop = stop if stop is not None else Stop(sleep=sleep)
        self.limiter = Limiter(settings.request_interval, clock, self.stop.sleep)
        self.wall_clock = wall_clock
        self.rng = rng or random.Random()
        self.stats = FetchStats()
        self.deadline = answer_deadline(settings.timeout)
        self.max_bytes = max_answer_bytes(settings.page_size)
        self._client = httpx.AsyncClient(
            transport=transport,
            headers={
                "User-Agent": user_agent(settings.contact),
                "Accept": "application/atom+xml",
                "Accept-Encoding": ACCEPT_ENCODING,
            },
            timeout=httpx.Timeout(settings.timeout),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            follow_redirects=True,
        )

    async def __aenter__(self) -> ArxivClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def fetch_all(
        self, queries: Sequence[str | IdLookup], progress: Progress | None = None
    ) -> tuple[Paper, ...]:
        """Every paper of every query, each id once (the newest version seen).

        Raises ``FetchError`` when a page cannot be had after the retries, and
        ``Stopped`` when the stop is requested: the cycle then records
        nothing, so a rerun loses nothing.
        """
        pages = [[p async for p in self._pages(query, progress)] for query in queries]
        return tuple(newest_versions(*pages).values())

    async def fetch_ids(self, ids: Sequence[str]) -> tuple[Paper, ...]:
        """The newest version of each paper in ``ids`` (to notice revisions)."""
        lookups = [IdLookup(b) for b in id_batches(ids, api_url=self.settings.api_url)]
        return await self.fetch_all(lookups)

    async def fetch_newest(self, query: str, pages: int) -> tuple[Paper, ...]:
        """The first ``pages`` pages of ``query``'s results (newest submissions first).

        At most ``pages`` requests, retries aside, however many results there
        are: the rest are not asked for. Raises as ``fetch_all`` does.
        """
        wanted = pages * self.settings.page_size
        papers: list[Paper] = []
        results = self._pages(query, None)
        try:
            async for paper in results:
                papers.append(paper)
                if len(papers) >= wanted:
                    break  # before the next page is asked for
        finally:
            await results.aclose()
        return tuple(newest_versions(papers).values())

    async def _pages(
        self, query: str | IdLookup, progress: Progress | None
    ) -> AsyncGenerator[Paper, None]:
        start = 0
        total: int | None = None
        size = self.settings.page_size
        while total is None or start < total:
            if start >= MAX_OFFSET:
                log.warning(
                    "arXiv stops at %d results; %d more not fetched for one query",
                    MAX_OFFSET,
                    (total or 0) - start,
                )
                return
            self.stop.check("the fetch")
            page_size = min(size, MAX_OFFSET - start)
            page = await self._page(query, start, page_size)
            # totalResults may grow while we page (new submissions); follow it.
            total = page.total_results
            self.stats.pages += 1
            self.stats.entries += page.entry_count
            if progress:
                progress(min(start + page.entry_count, total), total)
            for paper in page.papers:
                yield paper
            if page.entry_count == 0:
                return  # an empty first page with totalResults 0: no results
            start += page.entry_count

    async def _page(self, query: str | IdLookup, start: int, page_size: int) -> Page:
        attempts = self.settings.max_retries + 1
        wait_extra = 0.0
        last_reason = ""
        last_status: int | None = None
        for attempt in range(attempts):
            await self.limiter.wait(wait_extra)
            try:
                return await self._attempt(query, start, page_size)
            except _Retryable as exc:
                last_reason = str(exc)
                last_status = exc.status
                self.stats.retries += attempt + 1 < attempts
                backoff = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)
                backoff *= 0.5 + self.rng.random()  # jitter
                wait_extra = max(backoff, exc.retry_after or 0.0)
                if attempt + 1 < attempts:
                    log.warning(
                        "arXiv page at start=%d failed (%s); retry %d of %d in %.0f s",
                        start,
                        last_reason,
                        attempt + 1,
                        attempts - 1,
                        wait_extra,
                    )
        raise FetchError(
            f"arXiv did not give a usable answer after {attempts} attempts "
            f"(last: {last_reason}); nothing was recorded, rerun later",
            url=self.settings.api_url,
            status=last_status,
            attempts=attempts,
        )

    def _unreachable(self, exc: httpx.ConnectError) -> FetchError:
        url = self.settings.api_url
        host = httpx.URL(url).host
        reason = str(exc) or type(exc).__name__
        # httpx says "All connection attempts failed"; the OS error is in the chain
        causes: list[BaseException] = []
        cause: BaseException | None = exc
        while cause is not None and len(causes) < 10:
            causes.append(cause)
            cause = cause.__cause__ or cause.__context__
        texts = " ".join(str(c) for c in causes)
        if any(isinstance(c, socket.gaierror) for c in causes) or "not known" in texts:
            reason = f"the name {host} does not resolve"
        elif any(isinstance(c, ConnectionRefusedError) for c in causes) or "refused" in texts:
            reason = f"{host} refused the connection"
        return FetchError(
            f"cannot reach arXiv at {url}: {reason}; check the network, or point "
            "DIGEST_ARXIV_API_URL at a server that answers like arXiv (README: "
            '"Trying it with no arXiv at hand"). Nothing was recorded',
            url=url,
            attempts=1,
        )

    def _too_large(self, exc: TooLarge) -> FetchError:
        # not retried: the same answer would come again, at the same cost
        url = self.settings.api_url
        return FetchError(
            f"arXiv's answer from {url} {exc}, the cap for a page of "
            f"{self.settings.page_size} entries; it was not read further and nothing "
            "was recorded, rerun later",
            url=url,
            attempts=1,
        )

    async def _get(self, params: dict[str, str]) -> _Answer:
        """One request and its whole answer, within ``self.deadline`` (``TimeoutError``).

        The deadline covers reading the body too: httpx's own timeout is per
        read, and a server trickling a byte at a time never trips it. The
        body is read raw and inflated here, within ``self.max_bytes``
        (``TooLarge``): httpx's decoders inflate without a limit.
        """
        async with (
            asyncio.timeout(self.deadline),
            self._client.stream("GET", self.settings.api_url, params=params) as response,
        ):
            self.stats.answered += 1
            headers = response.headers
            if (date := _date(headers)) is not None:
                # the server's clock, and ours when it spoke: the cycle checks its own by it
                self.stats.server_date, self.stats.server_date_seen = date, self.wall_clock()
            body = Body(
                self.max_bytes, headers.get("Content-Encoding"), headers.get("Content-Length")
            )
            async for chunk in response.aiter_raw():
                body.feed(chunk)
            return _Answer(response.status_code, headers, body.finish())

    async def _attempt(self, query: str | IdLookup, start: int, page_size: int) -> Page:
        if isinstance(query, IdLookup):
            params = id_page_params(query.ids, start, page_size)
        else:
            params = page_params(query, start, page_size)
        self.stats.requests += 1
        try:
            answer = await self.stop.run(self._get(params), "the fetch")
        except TooLarge as exc:
            raise self._too_large(exc) from exc
        except MalformedPage as exc:
            raise _Retryable(f"bad answer: {exc}") from exc
        except TimeoutError as exc:
            raise _Retryable(f"no whole answer within {self.deadline:g} s") from exc
        except httpx.TimeoutException as exc:
            raise _Retryable(f"timed out after {self.settings.timeout:g} s") from exc
        except httpx.ConnectError as exc:
            if self.fail_fast and self.stats.answered == 0:
                raise self._unreachable(exc) from exc
            raise _Retryable(f"connection failed: {exc}") from exc
        except httpx.TransportError as exc:
            raise _Retryable(f"connection failed: {exc}") from exc
        status = answer.status
        if status == 429 or status >= 500:
            wait = _retry_after(answer.headers, self.wall_clock())
            raise _Retryable(f"HTTP {status}", wait, status)
        try:
            page = parse_page(answer.body)
        except ArxivQueryError as exc:
            url = self.settings.api_url
            raise ArxivQueryError(
                f"{exc} (HTTP {status}); check the keywords in the config", url=url, status=status
            ) from exc
        except MalformedPage as exc:
            if status != 200:
                raise FetchError(
                    f"arXiv answered HTTP {status}: {exc}", url=self.settings.api_url, status=status
                ) from exc
            raise _Retryable(f"bad page: {exc}", status=status) from exc
        if status != 200:
            url = self.settings.api_url
            raise FetchError(f"arXiv answered HTTP {status} to {url}", url=url, status=status)
        total = page.total_results
        if page.entry_count == 0 and start < total:
            # arXiv sometimes answers 200 with an empty page although results
            # exist (arxiv.py #43, #119, #129): retry, never take it as the end.
            raise _Retryable(f"empty page at start={start} of {total} results")
        expected = min(page_size, total - start)
        if 0 < page.entry_count < expected:
            raise _Retryable(f"short page: {page.entry_count} of {expected} entries")
        return page
