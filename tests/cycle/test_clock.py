"""The clock check: the rules (pure), and a cycle that refuses or reads future records as unknown.

The cycles run in-process against the loopback arXiv, whose Date header is
the real time; the arXiv client's wall clock and the cycle's ``now`` are
moved together, as one wrong system clock would move them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from digest.arxiv.fetch import ArxivClient
from digest.config import loading as config_mod
from digest.cycle.clock import TOLERANCE, ArxivTime, check, future_records, known_time, span
from digest.cycle.dispatch import SmtpDelivery
from digest.cycle.inputs import Collaborators
from digest.cycle.plan import term_keys
from digest.cycle.report import CycleReport
from digest.cycle.run import run_cycle
from digest.errors import EXIT_TEMPFAIL, ClockError
from digest.mail import Mailer
from digest.store import Store, SubscriberState
from tests.support.arxiv_server import ArxivServer
from tests.support.configs import config_dict
from tests.support.smtp_server import SmtpServer

NOW = datetime(2026, 12, 7, 7, 0, tzinfo=UTC)


def arxiv_at(offset: timedelta) -> ArxivTime:
    """arXiv's answer seen by a clock ``offset`` ahead of it."""
    return ArxivTime(theirs=NOW, ours=NOW + offset)


# -- the rules ----------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [timedelta(0), TOLERANCE, -TOLERANCE, timedelta(seconds=40)])
def test_a_clock_within_the_tolerance_of_arxivs_is_trusted(offset: timedelta) -> None:
    check(NOW + offset, arxiv_at(offset), last_cycle=NOW - timedelta(days=1))


@pytest.mark.parametrize(
    "offset, words",
    [
        (timedelta(days=200), "200 days ahead of"),
        (timedelta(days=7), "7 days ahead of"),
        (TOLERANCE + timedelta(minutes=1), "61 minutes ahead of"),
        (-timedelta(hours=3), "3 hours behind"),
    ],
)
def test_a_clock_off_arxivs_by_more_is_refused_naming_both_times(
    offset: timedelta, words: str
) -> None:
    with pytest.raises(ClockError) as caught:
        check(NOW + offset, arxiv_at(offset), last_cycle=None)
    text = str(caught.value)
    assert words in text
    assert f"{NOW + offset:%Y-%m-%d %H:%M} UTC" in text and "2026-12-07 07:00 UTC" in text
    assert "recorded nothing" in text and "timedatectl" in text
    assert caught.value.exit_code == EXIT_TEMPFAIL and caught.value.retryable


def test_agreeing_with_arxiv_a_last_cycle_in_the_future_is_no_refusal() -> None:
    check(NOW, arxiv_at(timedelta(0)), last_cycle=NOW + timedelta(days=7))


def test_without_arxivs_time_a_clock_behind_the_last_cycle_is_refused() -> None:
    check(NOW, None, last_cycle=NOW + TOLERANCE)  # an hour: a clock set back a little
    with pytest.raises(ClockError, match=r"7 days before the last cycle's start"):
        check(NOW, None, last_cycle=NOW + timedelta(days=7))
    check(NOW, None, last_cycle=None)  # a first cycle with nothing to compare


def test_known_reads_a_time_in_the_future_of_the_clock_as_unknown() -> None:
    assert known_time(NOW + TOLERANCE, NOW) == NOW + TOLERANCE
    assert known_time(NOW + TOLERANCE + timedelta(seconds=1), NOW) is None
    assert known_time(NOW - timedelta(days=400), NOW) == NOW - timedelta(days=400)
    assert known_time(None, NOW) is None


def test_span_says_a_difference_as_a_person_would() -> None:
    assert span(timedelta(days=200, seconds=3)) == "200 days"
    assert span(-timedelta(hours=5, minutes=10)) == "5 hours"
    assert span(timedelta(minutes=61)) == "61 minutes"
    assert span(timedelta(seconds=20)) == "0 minutes"


def test_future_records_are_named_with_their_times_and_readers() -> None:
    ahead = NOW + timedelta(days=7)
    states = [
        SubscriberState("a@x.org", watermarks={"k:x": ahead - timedelta(days=2)}),
        SubscriberState("b@x.org", served_slot=ahead, first_seen=NOW - timedelta(days=9)),
        SubscriberState("c@x.org", watermarks={"k:x": NOW - timedelta(days=2)}),
    ]
    found = future_records(NOW, last_cycle=ahead, last_fetch=NOW, last_slot=ahead, states=states)
    assert found == (
        "the last cycle (2026-12-14 07:00 UTC)",
        "the last completed slot (2026-12-14 07:00 UTC)",
        "the starting points of 1 reader (a@x.org)",
        "the weekly slots of 1 reader (b@x.org)",
    )
    assert future_records(NOW, last_cycle=NOW, states=states[2:]) == ()


# -- a cycle -------------------------------------------------------------------------------


def cycle(cfg: Path, now: datetime, smtp: SmtpServer, *, wall: timedelta) -> CycleReport:
    """One cycle at ``now`` whose arXiv client reads the real clock moved by ``wall``."""
    conf = config_mod.load(cfg, env={})

    def wall_clock() -> datetime:
        return datetime.now(UTC) + wall

    async def go(store: Store) -> CycleReport:
        async with ArxivClient(conf.settings.arxiv, wall_clock=wall_clock) as client:
            mailer = Mailer(conf.settings.smtp)
            collab = Collaborators(client, SmtpDelivery(mailer, None))
            return await run_cycle(conf, store, collab, now=now)

    with Store.open(conf.settings.database, now=now) as store:
        return asyncio.run(go(store))


def stored(cfg: Path) -> Callable[[], dict[str, object]]:
    def read() -> dict[str, object]:
        with Store.open(cfg.parent / "digest.json", readonly=True) as store:
            emails = store.subscriber_emails()
            return {
                "papers": len(store.papers()),
                "last_cycle": store.last_cycle(),
                "last_fetch": store.last_fetch(),
                "readers": {e: store.subscriber(e).watermarks for e in emails},
            }

    return read


def test_a_cycle_whose_clock_runs_ahead_of_arxiv_refuses_before_recording_anything(
    arxiv: ArxivServer, smtp: SmtpServer, write_config
) -> None:
    cfg = write_config(config_dict(arxiv.url, smtp.port))
    real = datetime.now(UTC)
    assert cycle(cfg, real, smtp, wall=timedelta(0)).exit_code == 0  # a right clock first
    sent, before = len(smtp.received), stored(cfg)()
    for wrong in (timedelta(days=200), timedelta(days=7), -timedelta(hours=2)):
        with pytest.raises(ClockError):
            cycle(cfg, datetime.now(UTC) + wrong, smtp, wall=wrong)
        # no papers cached with a wrong first_seen, no pruning, no starting points, no record
        assert stored(cfg)() == before
    assert len(smtp.received) == sent
    assert len(arxiv.state.requests) > 0


def test_a_cycle_reads_future_records_as_unknown_and_sets_them_afresh(
    arxiv: ArxivServer, smtp: SmtpServer, write_config, caplog
) -> None:
    cfg = write_config(config_dict(arxiv.url, smtp.port))
    # a first cycle under a clock a week ahead that nothing could check (as if arXiv
    # had sent no Date): every starting point lies after every paper
    ahead = datetime.now(UTC) + timedelta(days=7)
    conf = config_mod.load(cfg, env={})
    with Store.open(conf.settings.database, now=ahead) as store:
        for sub in conf.subscribers:
            store.ensure_watermarks(sub.email, term_keys(sub), ahead - timedelta(days=2), ahead)
        store.set_last_fetch(ahead)
        store.set_last_cycle({"started": ahead.isoformat(), "finished": ahead.isoformat(),
                              "result": "ok"})  # fmt: skip
    caplog.set_level(logging.WARNING, logger="digest")
    report = cycle(cfg, datetime.now(UTC), smtp, wall=timedelta(0))
    assert report.exit_code == 0
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == ["alice@example.org", "bob@example.org"]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "recorded under a clock that ran ahead" in warning
    assert "the last cycle" in warning and "the starting points of 2 readers" in warning
    after = stored(cfg)()
    marks = after["readers"]
    assert isinstance(marks, dict)
    assert all(t < datetime.now(UTC) for m in marks.values() for t in m.values())


def test_the_arxiv_client_records_the_servers_date_and_its_own_clock(
    arxiv: ArxivServer, smtp: SmtpServer, write_config
) -> None:
    cfg = write_config(config_dict(arxiv.url, smtp.port))
    conf = config_mod.load(cfg, env={})
    seen = datetime(2030, 1, 1, tzinfo=UTC)

    async def go() -> ArxivClient:
        async with ArxivClient(conf.settings.arxiv, wall_clock=lambda: seen) as client:
            await client.fetch_all(["all:proton"])
            return client

    stats = asyncio.run(go()).stats
    assert stats.server_date_seen == seen
    assert stats.server_date is not None
    assert abs(stats.server_date - datetime.now(UTC)) < timedelta(minutes=1)
