"""The arXiv client against a loopback HTTP server serving recorded Atom."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import random
import time
import tracemalloc
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from digest import __version__
from digest.arxiv.feed import MalformedPage
from digest.arxiv.fetch import ArxivClient, Limiter
from digest.arxiv.limits import Body, answer_deadline, max_answer_bytes
from digest.errors import ArxivQueryError, FetchError, Stopped
from digest.models import ArxivSettings
from digest.stop import Stop
from tests.support.arxiv_server import ArxivServer, gzip_bomb, load_entries

PAGES = (
    "api_new_2026-04_all-testing_start-0_max-10.xml",
    "api_new_2026-04_all-testing_start-10_max-10.xml",
    "api_new_2026-04_all-testing_start-20_max-10.xml",
)


@pytest.fixture
def server():
    header, entries = load_entries(PAGES)
    with ArxivServer(header, entries) as srv:
        yield srv


class FakeSleep:
    """Records the back-off sleeps instead of waiting them out."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def settings(url: str, **kw) -> ArxivSettings:
    base = ArxivSettings(
        api_url=url, request_interval=0.05, page_size=10, timeout=1.0, max_retries=3
    )
    return replace(base, **kw)


def fetch(s: ArxivSettings, queries=("q",), sleep=None, within: float = 30.0):
    """Fetch every page; a fetch still running after ``within`` seconds fails the test."""

    async def go():
        kwargs = {"rng": random.Random(1)}
        if sleep is not None:
            kwargs["sleep"] = sleep
        async with ArxivClient(s, **kwargs) as client:
            papers = await client.fetch_all(list(queries))
            return papers, client.stats

    async def bounded():
        return await asyncio.wait_for(go(), within)

    return asyncio.run(bounded())


def test_pages_through_all_results_in_order(server: ArxivServer) -> None:
    papers, stats = fetch(settings(server.url))
    assert len(papers) == 30 and len({p.id for p in papers}) == 30
    assert [r.params["start"] for r in server.state.requests] == ["0", "10", "20"]
    assert stats.requests == 3 and stats.retries == 0
    r = server.state.requests[0]
    assert r.params["sortBy"] == "submittedDate" and r.params["sortOrder"] == "descending"
    assert r.params["max_results"] == "10"
    assert r.user_agent.startswith(f"daily-papers-digest/{__version__}")


def test_the_newest_results_only_cost_only_their_pages(server: ArxivServer) -> None:
    async def go():
        async with ArxivClient(settings(server.url)) as client:
            return await client.fetch_newest("q", pages=2), client.stats

    papers, stats = asyncio.run(go())
    assert len(papers) == 20 and stats.requests == 2  # of 3 pages
    assert [r.params["start"] for r in server.state.requests] == ["0", "10"]


def test_requests_are_spaced_by_the_interval(server: ArxivServer) -> None:
    fetch(settings(server.url, request_interval=0.3))
    times = [r.at for r in server.state.requests]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # the server notes a request when its thread gets to it: on a loaded
    # machine the first can be noted late and the gap after it look shorter
    # than the client waited (the exact rule: the Limiter tests below)
    assert len(gaps) == 2 and min(gaps) >= 0.25


class FakeClock:
    """A monotonic clock that only the fake sleep moves."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_the_limiter_waits_out_the_rest_of_the_interval_from_the_last_start() -> None:
    clock = FakeClock()
    limiter = Limiter(3.0, clock, clock.sleep)

    async def go() -> list[float]:
        starts = []
        for work in (0.0, 1.0, 5.0, 0.0):
            await limiter.wait()
            starts.append(clock.now)
            clock.now += work  # the request itself takes this long
        return starts

    # the first goes at once; the second waits 3 s; the third waits the 2 s a
    # 1 s request left of its 3; the fourth, after a 5 s request, not at all
    assert asyncio.run(go()) == [100.0, 103.0, 106.0, 111.0]
    assert clock.slept == [3.0, 2.0]


def test_the_limiter_honours_a_longer_wait_the_server_asked_for() -> None:
    clock = FakeClock()
    limiter = Limiter(3.0, clock, clock.sleep)

    async def go() -> None:
        await limiter.wait(at_least=10.0)  # Retry-After before anything was sent
        await limiter.wait(at_least=10.0)
        await limiter.wait()

    asyncio.run(go())
    assert clock.slept == [10.0, 10.0, 3.0]


def test_retries_and_spacing_apply_to_retries_too(server: ArxivServer) -> None:
    server.state.faults = ["503", "429"]
    sleep = FakeSleep()
    papers, stats = fetch(settings(server.url, request_interval=0.0), sleep=sleep)
    assert len(papers) == 30
    assert stats.requests == 5 and stats.retries == 2
    # exponential back-off with jitter: base 5 s, then 10 s (x 0.5..1.5)
    assert 2.5 <= sleep.calls[0] <= 7.5 and 5 <= sleep.calls[1] <= 15


@pytest.mark.parametrize("fault", ["empty", "truncated", "blank", "503", "429"])
def test_each_fault_is_retried_and_nothing_is_lost(server: ArxivServer, fault: str) -> None:
    server.state.faults = ["ok", fault]  # the second page fails once
    papers, stats = fetch(settings(server.url), sleep=FakeSleep())
    assert len(papers) == 30 and stats.retries == 1


def test_timeout_is_retried(server: ArxivServer) -> None:
    server.state.faults = ["hang"]
    papers, stats = fetch(settings(server.url, timeout=0.3), sleep=FakeSleep())
    assert len(papers) == 30 and stats.retries == 1


def test_a_trickling_answer_is_cut_off_at_the_deadline_and_retried(server: ArxivServer) -> None:
    # one byte every 50 ms: each read comes well inside the 0.3 s timeout
    server.state.faults = ["trickle"]
    t0 = time.monotonic()
    papers, stats = fetch(settings(server.url, timeout=0.3), sleep=FakeSleep(), within=10)
    assert len(papers) == 30 and stats.retries == 1
    assert time.monotonic() - t0 < answer_deadline(0.3) + 2


def test_a_trickle_on_every_attempt_says_why_it_gave_up(server: ArxivServer) -> None:
    server.state.faults = ["trickle"] * 2
    with pytest.raises(FetchError) as info:
        fetch(settings(server.url, timeout=0.3, max_retries=1), sleep=FakeSleep(), within=10)
    deadline = answer_deadline(0.3)
    assert f"last: no whole answer within {deadline:g} s" in str(info.value)
    assert info.value.retryable


def test_a_gzip_answer_is_inflated(server: ArxivServer) -> None:
    server.state.faults = ["gzip"]
    papers, stats = fetch(settings(server.url))
    assert len(papers) == 30 and stats.retries == 0


def refused_for_size(server: ArxivServer, fault: str) -> tuple[FetchError, int, float]:
    """The error a one-fault fetch ends with, the peak memory it took, and how long."""
    server.state.faults = [fault]
    gzip_bomb(64 << 20)  # built before measuring: the server's work is not the client's
    tracemalloc.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(FetchError) as info:
            fetch(settings(server.url), sleep=FakeSleep())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(server.state.requests) == 1  # the same answer would come again: not retried
    return info.value, peak, time.monotonic() - t0


def test_a_gzip_bomb_is_refused_before_it_inflates(server: ArxivServer) -> None:
    err, peak, _ = refused_for_size(server, "gzip-bomb")  # 64 KB inflating to 64 MB
    cap = max_answer_bytes(10)
    assert peak < 4 * cap
    assert str(err) == (
        f"arXiv's answer from {server.url} inflates to more than {cap:,} bytes, the cap "
        "for a page of 10 entries; it was not read further and nothing was recorded, rerun later"
    )
    assert err.retryable and err.url == server.url


def test_an_announced_length_over_the_cap_is_refused_before_reading(server: ArxivServer) -> None:
    err, _, seconds = refused_for_size(server, "huge-length")
    assert f"announces 1,073,741,824 bytes, more than {max_answer_bytes(10):,}" in str(err)
    assert seconds < 1  # the body trickles: the client did not wait for it


def test_an_unsized_body_over_the_cap_is_refused(server: ArxivServer) -> None:
    err, peak, _ = refused_for_size(server, "endless")  # 8 MB, no Content-Length
    assert f"sends more than {max_answer_bytes(10):,} bytes" in str(err)
    assert peak < 4 * max_answer_bytes(10)


@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        ("gzip", b"this is not gzip"),
        ("br", b"brotli was never asked for"),
        ("gzip, gzip", gzip.compress(gzip.compress(b"<feed/>"))),  # stacked: a bomb in a bomb
    ],
)
def test_a_body_that_cannot_be_inflated_is_a_bad_page(encoding: str, data: bytes) -> None:
    with pytest.raises(MalformedPage):
        body = Body(1000, encoding, None)
        body.feed(data)
        body.finish()


def test_exhausted_retries_raise_a_readable_error(server: ArxivServer) -> None:
    server.state.faults = ["503"] * 4
    with pytest.raises(FetchError) as info:
        fetch(settings(server.url), sleep=FakeSleep())
    assert str(info.value) == (
        "arXiv did not give a usable answer after 4 attempts "
        "(last: HTTP 503); nothing was recorded, rerun later"
    )
    assert len(server.state.requests) == 4


def test_error_feed_is_not_retried(server: ArxivServer) -> None:
    server.state.faults = ["error400"]
    with pytest.raises(ArxivQueryError, match="incorrect id format for abc"):
        fetch(settings(server.url), sleep=FakeSleep())
    assert len(server.state.requests) == 1


def test_connection_refused_is_a_fetch_error() -> None:
    with pytest.raises(FetchError, match="connection failed"):
        fetch(settings("http://127.0.0.1:9/api/query", max_retries=1), sleep=FakeSleep())


def test_one_connection_at_a_time(server: ArxivServer) -> None:
    # two fetches at once on one client: the server never answers two requests at once
    server.state.delay = 0.1

    async def go():
        async with ArxivClient(settings(server.url, request_interval=0.0)) as client:
            return await asyncio.gather(client.fetch_all(["a"]), client.fetch_all(["b"]))

    first, second = asyncio.run(go())
    assert len(first) == len(second) == 30 and len(server.state.requests) == 6
    assert server.state.max_in_flight == 1


def test_several_queries_merge_and_deduplicate(server: ArxivServer) -> None:
    papers, _ = fetch(settings(server.url), queries=("q1", "q2"))
    assert len(papers) == 30
    assert len(server.state.requests) == 6


def streamed(status: int, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    """An answer whose body is still to be read, as a real transport gives it."""
    return httpx.Response(status, headers=headers, stream=httpx.ByteStream(body))


def test_transport_is_injectable() -> None:
    header, entries = load_entries([PAGES[0]])
    body = header + b"".join(entries) + b"</feed>"
    body = body.replace(b">214881<", b">10<")  # one page of ten results
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return streamed(200, body)

    async def go():
        async with ArxivClient(
            settings("http://arxiv.test/api/query"), transport=httpx.MockTransport(handler)
        ) as c:
            return await c.fetch_all(["q"])

    papers = asyncio.run(go())
    assert len(papers) == 10 and papers[0].id == "2202.12139"
    assert [r.url.host for r in seen] == ["arxiv.test"]  # no socket, the transport answered
    assert seen[0].url.params["search_query"] == "q"


def test_retry_after_as_a_date_is_read_on_the_injected_clock() -> None:
    header, entries = load_entries([PAGES[0]])
    ok = (header + b"".join(entries) + b"</feed>").replace(b">214881<", b">10<")
    answers = [
        streamed(503, b"", {"Retry-After": "Mon, 30 Nov 2026 07:00:40 GMT"}),
        streamed(200, ok),
    ]
    sleep = FakeSleep()

    async def go():
        async with ArxivClient(
            settings("http://arxiv.test/api/query", request_interval=0.0),
            transport=httpx.MockTransport(lambda request: answers.pop(0)),
            sleep=sleep,
            wall_clock=lambda: datetime(2026, 11, 30, 7, 0, tzinfo=UTC),
            rng=random.Random(1),
        ) as c:
            return await c.fetch_all(["q"])

    assert len(asyncio.run(go())) == 10
    # the date is 40 s after the injected now (the real clock would say it passed long ago)
    assert sleep.calls == [pytest.approx(40.0, abs=0.5)]


def seconds_to_stop(server: ArxivServer, s: ArxivSettings, after_first: float) -> float:
    """Stop ``after_first`` seconds after the server saw the first request; how long it took."""

    async def go() -> float:
        stop = Stop()
        async with ArxivClient(s, stop=stop) as client:
            task = asyncio.ensure_future(client.fetch_all(["q"]))
            while not server.state.requests:
                await asyncio.sleep(0.01)
            await asyncio.sleep(after_first)
            t0 = time.monotonic()
            stop.event.set()
            with pytest.raises(Stopped):
                await task
            return time.monotonic() - t0

    return asyncio.run(go())


def test_a_stop_interrupts_the_back_off_at_once(server: ArxivServer) -> None:
    server.state.faults = ["503"] * 10
    # 0.2 s after the first answer the client is in its first back-off (2.5 s or more)
    assert seconds_to_stop(server, settings(server.url), after_first=0.2) < 0.5
    assert len(server.state.requests) == 1


def test_a_stop_cancels_the_request_in_flight(server: ArxivServer) -> None:
    server.state.delay = 3.0
    assert seconds_to_stop(server, settings(server.url, timeout=10.0), after_first=0.0) < 0.5


def test_a_stop_cuts_a_trickling_answer_short(server: ArxivServer) -> None:
    server.state.faults = ["trickle"]
    assert seconds_to_stop(server, settings(server.url, timeout=10.0), after_first=0.5) < 0.5


def test_a_rejected_query_carries_its_facts_and_is_not_retryable(server: ArxivServer) -> None:
    server.state.faults = ["error400"]
    with pytest.raises(ArxivQueryError) as info:
        fetch(settings(server.url), sleep=FakeSleep())
    assert (info.value.status, info.value.url, info.value.retryable) == (400, server.url, False)


def test_user_agent_names_the_operator_contact_not_a_third_party(server: ArxivServer) -> None:
    fetch(settings(server.url, contact="mailto:ops@uni.example"))
    agent = server.state.requests[0].user_agent
    assert agent == f"daily-papers-digest/{__version__} (mailto:ops@uni.example)"
    assert "pypi" not in agent


def test_contact_defaults_to_the_from_mailbox_and_can_be_set() -> None:
    from digest.config.loading import parse

    base = "subscribers:\n  - email: a@example.org\n    keywords: [graph]\n"
    smtp = "settings:\n  smtp:\n    from: 'Papers <papers@dept.example>'\n"
    cfg = parse(smtp + base, Path("s.yaml"), {})
    assert cfg.settings.arxiv.contact == "mailto:papers@dept.example"
    cfg = parse(base, Path("s.yaml"), {"DIGEST_ARXIV_CONTACT": "https://dept.example/digest"})
    assert cfg.settings.arxiv.contact == "https://dept.example/digest"


def test_interactive_refused_connection_gives_up_at_once_with_the_fix() -> None:
    async def go():
        sleep = FakeSleep()
        s = settings("http://127.0.0.1:9/api/query")
        async with ArxivClient(s, sleep=sleep, fail_fast=True) as client:
            with pytest.raises(FetchError) as info:
                await client.fetch_all(["q"])
        return info.value, client.stats, sleep

    err, stats, sleep = asyncio.run(go())
    assert stats.requests == 1 and not [s for s in sleep.calls if s > 1]  # no back-off
    assert "127.0.0.1 refused the connection" in str(err)
    assert "DIGEST_ARXIV_API_URL" in str(err) and err.exit_code == 75


def test_interactive_unresolvable_name_gives_up_at_once() -> None:
    # DNS cannot be run here without leaving loopback: the resolver's answer is injected
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno -2] Name or service not known", request=request)

    async def go():
        s = settings("https://export.arxiv.org/api/query")
        client = ArxivClient(
            s, sleep=FakeSleep(), fail_fast=True, transport=httpx.MockTransport(refuse)
        )
        async with client:
            with pytest.raises(FetchError) as info:
                await client.fetch_all(["q"])
        return info.value, client.stats

    err, stats = asyncio.run(go())
    assert stats.requests == 1
    assert "the name export.arxiv.org does not resolve" in str(err)


def test_the_daemon_keeps_retrying_a_refused_connection() -> None:
    sleep = FakeSleep()
    with pytest.raises(FetchError, match="connection failed"):
        fetch(settings("http://127.0.0.1:9/api/query", max_retries=2), sleep=sleep)
    assert len([s for s in sleep.calls if s >= 2.5]) == 2  # two back-offs, then it gives up
