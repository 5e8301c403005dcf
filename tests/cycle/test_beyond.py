"""Papers beyond a reader's keywords in real cycles: one capped query, offered, not delivered.

Against the loopback arXiv (which answers every query with all its entries,
so local rules decide) and a real aiosmtpd.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from digest.arxiv import last_announced
from digest.cycle.report import CycleReport
from digest.cycle.run import BEYOND_PAGES
from digest.store.store import Store
from tests.support.arxiv_server import ArxivServer, make_entry
from tests.support.configs import config_dict
from tests.support.cycles import once
from tests.support.smtp_server import SmtpServer

LIKED = (
    "Attention-based parsing of sentences",
    "We parse sentences with attention over words; the parser learns syntax trees from "
    "treebanks and beats chart parsers on long sentences.",
)
CLOSE = (
    "Parsing long sentences with sparse attention",
    "A sparse attention parser for long sentences learns syntax trees from treebanks, "
    "faster than chart parsers.",
)


class World:
    def __init__(self, arxiv: ArxivServer, smtp: SmtpServer, folder: Path) -> None:
        self.arxiv, self.smtp, self.folder = arxiv, smtp, folder
        self.path = folder / "subscribers.yaml"
        arxiv.state.entries = []
        arxiv.state.by_id_only = [make_entry("1905.00001", *LIKED, categories=("cs.CL",))]

    def configure(self, subscribers: list[dict[str, Any]]) -> None:
        data = config_dict(self.arxiv.url, self.smtp.port, subscribers)
        self.path.write_text(yaml.safe_dump(data))

    def publish(self, n: int, title: str, abstract: str, *cats: str) -> None:
        when = datetime.now(UTC) - timedelta(minutes=n)
        self.arxiv.state.entries.append(
            make_entry(
                f"2611.{n:05d}",
                title,
                abstract,
                authors=(f"Author {n}",),  # nobody who wrote the liked paper
                categories=cats,
                published=when,
            )
        )

    def cycle(self) -> CycleReport:
        return once(self.path)

    def state(self, email: str):
        with Store.open(self.folder / "digest.json", readonly=True) as store:
            return store.subscriber(email)

    def texts(self, rcpt: str) -> list[str]:
        return [
            " ".join(r.message.get_body(("plain",)).get_content().split())
            for r in self.smtp.received
            if r.rcpt_tos == [rcpt]
        ]

    def category_requests(self) -> list[dict[str, str]]:
        return [
            r.params
            for r in self.arxiv.state.requests
            if r.params.get("search_query", "").startswith("(cat:")
        ]


@pytest.fixture
def world(arxiv: ArxivServer, smtp: SmtpServer, tmp_path: Path) -> World:
    return World(arxiv, smtp, tmp_path)


FAN = {"email": "fan@example.org", "keywords": ["compiler"], "likes": ["1905.00001"]}


def publish_day(world: World) -> None:
    world.publish(1, "A compiler for kernels", "We compile kernels.", "cs.PL")
    world.publish(2, *CLOSE, "cs.CL")
    world.publish(3, "Monsoon rainfall", "Monsoons follow seasonal cycles.", "cs.CL")  # unrelated
    world.publish(4, "Sparse attention parsers of galaxies", CLOSE[1], "astro-ph.GA")


def test_a_reader_with_likes_is_offered_close_papers_of_their_liked_categories(
    world: World,
) -> None:
    publish_day(world)
    world.configure([FAN])
    report = world.cycle()
    (query,) = world.category_requests()
    opened, _ = last_announced(report.started)
    assert query["search_query"] == (
        f"(cat:cs.CL) AND submittedDate:[{opened:%Y%m%d%H%M} TO {report.started:%Y%m%d%H%M}]"
    )
    (text,) = world.texts("fan@example.org")
    beyond = text[text.index("BEYOND YOUR KEYWORDS (1)") :]
    assert CLOSE[0] in beyond and "in cs.CL, a category of papers you like" in beyond
    assert "Monsoon rainfall" not in text and "galaxies" not in text  # not close; not liked
    assert text.startswith("Daily Papers") and "1 new paper for" in text
    state = world.state("fan@example.org")
    assert dict(state.delivered) == {"2611.00001": 1}  # the match alone
    assert dict(state.offered) == {"2611.00002": 1}
    assert report.subscribers[0].papers == 1


def test_an_offered_paper_is_not_offered_again(world: World) -> None:
    publish_day(world)
    world.configure([FAN])
    world.cycle()
    world.publish(5, "Another compiler", "A compiler again.", "cs.PL")
    world.cycle()
    first, second = world.texts("fan@example.org")
    assert CLOSE[0] in first and CLOSE[0] not in second
    assert "BEYOND YOUR KEYWORDS" not in second  # nothing else passes: no section


def test_no_reader_with_likes_no_category_query(world: World) -> None:
    publish_day(world)
    world.configure([{"email": "plain@example.org", "keywords": ["compiler"]}])
    world.cycle()
    assert world.category_requests() == []
    assert "BEYOND YOUR KEYWORDS" not in world.texts("plain@example.org")[0]


def test_the_category_query_costs_at_most_its_pages(world: World) -> None:
    world.publish(1, "A compiler for kernels", "We compile kernels.", "cs.PL")
    for n in range(10, 70):  # 61 entries: 7 pages of 10 for every query
        world.publish(n, f"Rainfall study {n}", "Monsoons follow a seasonal cycle.", "cs.CL")
    world.configure([FAN])
    world.cycle()
    assert [q["start"] for q in world.category_requests()] == ["0", "10", "20"][:BEYOND_PAGES]


def test_a_failed_category_query_offers_nothing_and_the_digest_goes_out(world: World) -> None:
    publish_day(world)
    world.configure([FAN])
    # the keyword query (one page), the liked paper's lookup, then the category query
    world.arxiv.state.faults = ["-", "-", "error400"]
    report = world.cycle()
    assert [s.status for s in report.subscribers] == ["sent"] and report.error is None
    (text,) = world.texts("fan@example.org")
    assert "BEYOND YOUR KEYWORDS" not in text and "A compiler for kernels" in text
    assert dict(world.state("fan@example.org").offered) == {}
