"""Weekly cadence, revisions, send_empty and per-subscriber limits, with an injected clock.

Each test runs real cycles (loopback arXiv, real aiosmtpd) at chosen instants;
the arXiv server hands out made-up entries dated relative to those instants.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from digest import config as config_mod
from digest.cycle import CycleReport, Options, run_cycle
from digest.store import Store
from tests.conftest import config_dict
from tests.support.arxiv_server import ArxivServer, make_entry
from tests.support.smtp_server import SmtpServer

MONDAY = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)


class World:
    """A config, a store path, a loopback arXiv and SMTP, and a clock we set."""

    def __init__(self, arxiv: ArxivServer, smtp: SmtpServer, path: Path) -> None:
        self.arxiv = arxiv
        self.smtp = smtp
        self.path = path
        self.arxiv.state.entries = []

    def configure(self, subscribers: list[dict[str, Any]], **settings: Any) -> None:
        data = config_dict(self.arxiv.url, self.smtp.port, subscribers, **settings)
        import yaml

        self.path.write_text(yaml.safe_dump(data))

    def publish(
        self,
        n: int,
        when: datetime,
        title: str = "A proton study",
        version: int = 1,
        comment: str | None = None,
    ) -> str:
        pid = f"2612.{n:05d}"
        self.arxiv.state.entries.insert(
            0,
            make_entry(
                pid,
                f"{title} {n}",
                "We measure the proton radius.",
                version=version,
                comment=comment,
                published=when,
            ),
        )
        return pid

    def cycle(self, now: datetime) -> CycleReport:
        cfg = config_mod.load(self.path, env={})
        with Store.open(cfg.settings.database, now=now) as store:
            return asyncio.run(run_cycle(cfg, store, now=now, options=Options()))

    def inbox(self, rcpt: str) -> list[Any]:
        return [r.message for r in self.smtp.received if r.rcpt_tos == [rcpt]]


@pytest.fixture
def world(arxiv, smtp, tmp_path: Path) -> World:
    return World(arxiv, smtp, tmp_path / "subscribers.yaml")


def ids_in(msg: Any) -> list[str]:
    text = msg.get_body(("plain",)).get_content()
    return re.findall(r"Abstract: https://arxiv.org/abs/(\S+)", text)


def new_ids_in(msg: Any) -> list[str]:
    text = msg.get_body(("plain",)).get_content()
    text = text.split("UPDATED SINCE YOU SAW THEM")[0]
    return re.findall(r"Abstract: https://arxiv.org/abs/(\S+)", text)


SUBSCRIBERS = [
    {"email": "daily@example.org", "keywords": ["proton"]},
    {
        "email": "weekly@example.org",
        "keywords": ["proton"],
        "frequency": "weekly",
        "weekday": "wed",
    },
]


def test_weekly_gets_one_digest_on_its_weekday_with_the_whole_week(world: World) -> None:
    world.configure(SUBSCRIBERS, lookback_days=2)
    sent_daily: list[str] = []
    for day in range(0, 4):  # Monday .. Thursday
        now = MONDAY + timedelta(days=day)
        world.publish(day, now - timedelta(hours=1))
        world.cycle(now)
        sent_daily.append(f"2612.{day:05d}")
    weekly = world.inbox("weekly@example.org")
    assert len(weekly) == 1  # only on Wednesday
    assert weekly[0]["Date"].startswith("Wed, 02 Dec 2026")
    assert sorted(ids_in(weekly[0])) == ["2612.00000", "2612.00001", "2612.00002"]
    assert "Weekly Papers" in weekly[0].get_body(("plain",)).get_content()
    # daily subscribers are unaffected: one digest a day, each paper once
    daily = world.inbox("daily@example.org")
    assert [ids_in(m) for m in daily] == [[i] for i in sent_daily]


def test_a_weekly_digest_missed_on_its_day_is_caught_up_once(world: World) -> None:
    world.configure(SUBSCRIBERS, lookback_days=2)
    world.cycle(MONDAY)  # the weekly subscriber is first seen
    world.publish(1, MONDAY + timedelta(days=1))
    world.cycle(MONDAY + timedelta(days=1, hours=1))  # Tuesday: not due
    # the daemon is down on Wednesday; back on Thursday
    world.publish(2, MONDAY + timedelta(days=2))
    thursday = MONDAY + timedelta(days=3)
    world.cycle(thursday)
    assert [sorted(ids_in(m)) for m in world.inbox("weekly@example.org")] == [
        ["2612.00001", "2612.00002"]
    ]
    world.cycle(thursday + timedelta(hours=2))  # and nothing twice
    assert len(world.inbox("weekly@example.org")) == 1


def test_weekly_with_nothing_new_is_served_silently_and_not_retried_daily(world: World) -> None:
    world.configure(SUBSCRIBERS[1:], lookback_days=2)
    world.cycle(MONDAY)
    wednesday = MONDAY + timedelta(days=2)
    r = world.cycle(wednesday)
    assert [s.status for s in r.subscribers] == ["nothing"]
    world.publish(1, wednesday + timedelta(hours=3))
    r = world.cycle(wednesday + timedelta(days=1))  # Thursday: waits for next week
    assert [s.status for s in r.subscribers] == ["waiting"]
    assert world.inbox("weekly@example.org") == []


REVISIONS = [
    {"email": "rev@example.org", "keywords": ["proton"], "include_revisions": True},
    {"email": "plain@example.org", "keywords": ["proton"]},
]


def test_a_new_version_appears_once_in_the_revision_section_for_those_who_asked(
    world: World,
) -> None:
    world.configure(REVISIONS, lookback_days=2)
    pid = world.publish(1, MONDAY - timedelta(hours=2))
    world.cycle(MONDAY)
    assert [ids_in(m) for m in world.inbox("rev@example.org")] == [[pid]]
    # ten days later v2 appears: its submission date is still v1's, outside the window
    later = MONDAY + timedelta(days=10)
    world.arxiv.state.entries.insert(
        0,
        make_entry(
            pid,
            "A proton study 1 (revised)",
            "We measure the proton radius again.",
            version=2,
            comment="v2: 12 pages, new figure",
            published=MONDAY - timedelta(hours=2),
        ),
    )
    world.publish(2, later - timedelta(hours=1))
    requests_before = len(world.arxiv.state.requests)
    world.cycle(later)
    id_lookups = [
        r for r in world.arxiv.state.requests[requests_before:] if r.params.get("id_list")
    ]
    assert [r.params["id_list"] for r in id_lookups] == [pid]
    rev_mail = world.inbox("rev@example.org")[-1]
    text = rev_mail.get_body(("plain",)).get_content()
    assert "UPDATED SINCE YOU SAW THEM (1)" in text and "now v2" in text
    assert "v2: 12 pages, new figure" in text
    assert new_ids_in(rev_mail) == ["2612.00002"]  # never as a new paper
    assert rev_mail["Subject"].startswith("1 new arXiv paper, 1 updated:")
    plain_mail = world.inbox("plain@example.org")[-1]
    assert "UPDATED SINCE" not in plain_mail.get_body(("plain",)).get_content()
    assert ids_in(plain_mail) == ["2612.00002"]
    # once per version: the next cycle says nothing more about it
    world.cycle(later + timedelta(days=1))
    assert len(world.inbox("rev@example.org")) == 2


def test_send_empty_says_why(world: World) -> None:
    world.configure(
        [{"email": "e@example.org", "keywords": ["proton"], "send_empty": True}], lookback_days=2
    )
    saturday = MONDAY + timedelta(days=5)
    world.cycle(saturday - timedelta(days=1))  # Friday: first cycle, nothing at all
    world.cycle(saturday)  # Saturday: no announcement since Friday
    world.cycle(saturday + timedelta(hours=1))  # same day: the note is not repeated
    mails = world.inbox("e@example.org")
    assert len(mails) == 2
    assert mails[0]["Subject"] == "No new arXiv papers: proton"
    last = mails[1].get_body(("plain",)).get_content()
    assert "Nothing new today: arXiv has announced no new papers since your last digest" in last
    html = mails[1].get_body(("html",)).get_content()
    assert "Thank you to arXiv" in html


def test_send_empty_when_announcements_had_no_match(world: World) -> None:
    world.configure(
        [{"email": "e@example.org", "keywords": ["neutrino"], "send_empty": True}], lookback_days=2
    )
    world.publish(1, MONDAY - timedelta(hours=1))
    world.cycle(MONDAY)
    tuesday = MONDAY + timedelta(days=1)
    world.cycle(tuesday)
    text = world.inbox("e@example.org")[-1].get_body(("plain",)).get_content()
    assert "none of the papers arXiv announced since your last digest matched" in text


def test_per_subscriber_max_papers_per_keyword(world: World) -> None:
    world.configure(
        [
            {"email": "few@example.org", "keywords": ["proton"], "max_papers_per_keyword": 2},
            {"email": "many@example.org", "keywords": ["proton"]},
        ],
        lookback_days=2,
    )
    for i in range(5):
        world.publish(i, MONDAY - timedelta(hours=i + 1))
    world.cycle(MONDAY)
    few = world.inbox("few@example.org")[0].get_body(("plain",)).get_content()
    many = world.inbox("many@example.org")[0]
    assert len(re.findall(r"Abstract: ", few)) == 2 and "... and 3 more" in few
    assert len(ids_in(many)) == 5
    assert world.inbox("few@example.org")[0]["Subject"].startswith("5 new arXiv papers")


def test_daily_and_weekly_are_served_from_the_same_fetches(world: World) -> None:
    world.configure(SUBSCRIBERS, lookback_days=2)
    world.cycle(MONDAY)
    searches = [r for r in world.arxiv.state.requests if r.params.get("search_query")]
    assert len({r.params["search_query"] for r in searches}) == 1
