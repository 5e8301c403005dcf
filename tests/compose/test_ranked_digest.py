"""Ranked digests that never hide a paper: order, likes, compact rows, the size budget.

Composed digests first (pure), then real cycles against the loopback arXiv
and SMTP servers: likes from ids (looked up by ``id_list``) and from a
BibTeX library move similar papers up, and only what a mail shows is
recorded as delivered; what did not fit is recorded skipped.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from digest import ranking as rank
from digest.cli.entry import main
from digest.compose.render import compose
from digest.compose.selection import HTML_LIMIT
from digest.config import loading as config_mod
from digest.cycle.report import CycleReport
from digest.matching.rules import match_all
from digest.models import Liked, Paper, Settings, SmtpSettings, Subscriber
from digest.store.store import Store
from tests.support.arxiv_server import ArxivServer, make_entry
from tests.support.configs import config_dict
from tests.support.cycles import once
from tests.support.paths import GOLDEN
from tests.support.smtp_server import SmtpServer

NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
SETTINGS = Settings(smtp=SmtpSettings(sender="Daily Papers <papers@digest.test>"))
# a row's link leads its second line; a full entry's follows "Abstract: "
SHOWN = re.compile(r"^ {3}(?:Abstract: )?https://arxiv.org/abs/([^\s|]+)", re.M)

GNN = (
    "A model for graph neural network compilers",
    "We generate fused kernels for graph neural network layers; the compiler "
    "tiles sparse aggregation and emits code for GPUs.",
)
LIKED = (
    "Compiling graph neural networks to fast kernels",
    "A compiler for graph neural networks that fuses sparse aggregation kernels "
    "and generates GPU code.",
)
OTHERS = [
    ("A model of proton scattering", "We measure the proton radius with electron beams."),
    ("A model of the monsoon", "Rainfall over the ocean follows a seasonal cycle."),
    ("A model of bird migration", "Flocks choose routes along coastlines, rivers, valleys."),
]


def paper(i: int, title: str, abstract: str = "An abstract.", **kw: Any) -> Paper:
    t = NOW - timedelta(hours=i)
    base = Paper(
        id=f"2611.{i:05d}",
        version=1,
        title=title,
        abstract=abstract,
        authors=("Ada Lovelace", "Alan Turing", "Grace Hopper"),
        categories=("cs.LG", "stat.ML"),
        primary_category="cs.LG",
        published=t,
        updated=t,
    )
    return replace(base, **kw)


def composed(sub: Subscriber, papers: list[Paper], likes: tuple[Liked, ...] = ()):
    corpus = rank.build_corpus(papers)
    profile = rank.build_profile(corpus, likes) if likes else rank.NO_PROFILE
    ranked = rank.rank(match_all(papers, sub), corpus, profile)
    return compose(sub, ranked, SETTINGS, cycle_id="c", created=NOW)


def order(text: str) -> list[str]:
    return SHOWN.findall(text)


# -- order -----------------------------------------------------------------------


def test_within_a_section_the_most_relevant_comes_first() -> None:
    sub = Subscriber(email="r@example.org", keywords=("compiler",))
    ps = [
        paper(1, "Notes on optimisation", "A compiler is mentioned once."),  # newest
        paper(2, "A compiler for compilers", "The compiler compiles a compiler."),
    ]
    digest, rendered = composed(sub, ps)
    assert [r.match.paper.id for r in digest.shown] == ["2611.00002", "2611.00001"]
    assert order(rendered.text) == ["2611.00002", "2611.00001"]


def test_sections_keep_the_readers_keyword_order() -> None:
    sub = Subscriber(email="r@example.org", keywords=("lattice", "compiler"))
    ps = [paper(1, "A compiler compiler"), paper(2, "A lattice"), paper(3, "A compiler")]
    digest, _ = composed(sub, ps)
    assert [s.keyword for s in digest.sections] == ["lattice", "compiler"]
    assert [r.match.paper.id for r in digest.shown] == ["2611.00002", "2611.00001", "2611.00003"]


def test_a_paper_close_to_a_liked_one_rises_and_says_so_in_both_parts() -> None:
    sub = Subscriber(email="r@example.org", keywords=("model",))
    ps = [paper(i + 1, t, a) for i, (t, a) in enumerate(OTHERS)] + [paper(9, *GNN)]
    digest, rendered = composed(sub, ps, likes=(Liked(None, *LIKED),))
    assert digest.shown[0].match.paper.id == "2611.00009"  # the oldest, first
    assert f"like: {LIKED[0]}" in rendered.html
    assert f"like: {LIKED[0]}" in " ".join(rendered.text.split())
    assert rendered.html.count("like: ") == 1


# -- compact rows ------------------------------------------------------------------


def rows_digest():
    sub = Subscriber(email="r@example.org", keywords=("compiler",), max_papers_per_keyword=2)
    ps = [
        paper(i, f"A compiler number {i}", authors=("A One", "B Two", "C Three"))
        for i in (1, 2, 3, 4)
    ]
    return composed(sub, ps)


def test_past_max_papers_per_keyword_papers_are_compact_rows_in_html() -> None:
    digest, rendered = rows_digest()
    (section,) = digest.sections
    assert [len(section.full), len(section.compact), len(section.left_out)] == [2, 2, 0]
    html = rendered.html
    row = html[html.rindex('<div class="row"', 0, html.index("A compiler number 3")) :]
    row = row[: row.index("</div>")]
    assert 'href="https://arxiv.org/abs/2611.00003"' in row
    assert "A One, B Two et al." in row and "cs.LG, stat.ML" in row and "compiler" in row
    # one link, the title's: a heavy reader's ~200 rows leave room for abstracts
    assert row.count("<a ") == 1 and len(row.encode()) < 300
    assert "A compiler number 3" in html and "A compiler number 4" in html
    assert html.count("An abstract.") == 2  # only the full entries carry an abstract
    # words never run on across a link's edge (SpamAssassin's HTML_OBFUSCATE)
    assert not re.search(r"</a>\w|\w<a ", html)


def test_compact_rows_in_the_text_part_follow_the_full_entries() -> None:
    _, rendered = rows_digest()
    text = rendered.text
    assert order(text) == ["2611.00001", "2611.00002", "2611.00003", "2611.00004"]
    assert (
        "3. A compiler number 3 "
        "https://arxiv.org/abs/2611.00003 | A One, B Two et al. | cs.LG, stat.ML | compiler "
        "4. A compiler number 4 "
    ) in " ".join(text.split())
    assert "search" not in text and "more:" not in text  # no "and N more" link


# -- the 100 KB budget ----------------------------------------------------------------


def many(n: int) -> list[Paper]:
    abstract = "We study the compiler and its passes in depth. " * 20
    return [paper(i, f"A compiler study, part {i}", abstract) for i in range(1, n + 1)]


def test_150_matches_are_all_shown_in_one_mail_under_100_kb() -> None:
    sub = Subscriber(email="r@example.org", keywords=("compiler",))
    ps = many(150)
    digest, rendered = composed(sub, ps)
    assert len(rendered.html.encode()) <= HTML_LIMIT
    assert digest.count == 150 and digest.left_out == 0
    assert sorted(order(rendered.text)) == sorted(p.id for p in ps)
    assert all(p.abs_url in rendered.html for p in ps)
    assert sum(len(s.full) for s in digest.sections) < 25  # full entries became rows


def test_600_matches_leave_the_lowest_ranked_out_and_the_mail_says_so() -> None:
    sub = Subscriber(email="r@example.org", keywords=("compiler",))
    ps = many(600)
    digest, rendered = composed(sub, ps)
    shown, left = digest.count, digest.left_out
    assert len(rendered.html.encode()) <= HTML_LIMIT
    assert left > 0 and shown + left == 600 and shown > 150
    # equal keyword strength: newest first, so the oldest are the ones left out
    assert set(digest.skips) == {p.id for p in ps[shown:]}
    assert not set(digest.skips) & set(digest.delivers)
    for part in (rendered.html, " ".join(rendered.text.split())):
        assert f"{left} lower-ranked matches left out" in part
        assert "would otherwise pass 100 KB" in part and "will not be sent again" in part


# -- space by relevance ----------------------------------------------------------------

LONG = "We describe the setting, the data and the evaluation protocol at length. " * 15


def nlp_day(n: int = 30) -> list[Paper]:
    """Off-topic papers that mention retrieval once, and on-topic language model papers."""
    off = [
        paper(i, f"A study of soil moisture, part {i}", LONG + "It uses retrieval once.")
        for i in range(1, n + 1)
    ]
    on = [
        paper(100 + i, f"Language model alignment, part {i}", "A language model. " * 3 + LONG)
        for i in range(1, n + 1)
    ]
    return off + on


NLP = Subscriber(email="r@example.org", keywords=("retrieval", "language model"))


def scores(rs) -> list[float]:
    return [r.score for r in rs]


def test_the_mail_opens_with_the_days_best_papers_wherever_their_section_is() -> None:
    digest, rendered = composed(NLP, nlp_day(5))
    top, *rest = digest.sections
    assert top.keyword == "Top of today" and len(top.shown) == 3
    best = sorted(digest.shown, key=lambda r: -r.score)[:3]
    assert top.shown == tuple(best)
    assert [s.keyword for s in rest] == ["retrieval", "language model"]
    assert order(rendered.text)[:3] == [r.match.paper.id for r in best]
    assert "TOP OF TODAY (3)" in rendered.text and "Top of today" in rendered.html
    assert sorted(digest.paper_ids) == sorted(p.id for p in nlp_day(5))  # each paper once
    # the subject still names a keyword whose papers all moved to the top
    assert rendered.subject == "10 new arXiv papers: retrieval and language model"


def test_a_top_paper_says_what_it_matched_and_a_weekly_mail_has_the_top_of_the_week() -> None:
    weekly = replace(NLP, frequency="weekly", weekday="mon")
    _, rendered = composed(weekly, nlp_day(5))
    text = " ".join(rendered.text.split())
    assert "TOP OF THE WEEK (3)" in text and "Top of today" not in rendered.html
    assert text.count("matches: language model") == 3  # no heading says it in the top


def test_full_entries_go_to_the_most_relevant_wherever_their_section_is() -> None:
    digest, rendered = composed(NLP, nlp_day())
    full = [r for s in digest.sections for r in s.full]
    rows = [r for s in digest.sections for r in s.compact]
    assert len(rendered.html.encode()) <= HTML_LIMIT and full and rows
    assert min(scores(full)) >= max(scores(rows))
    assert digest.count == 60 and digest.left_out == 0


def test_the_least_relevant_are_left_out_first_whatever_their_section() -> None:
    ps = [replace(p, id=f"2612.{i:05d}") for i, p in enumerate(nlp_day(150) * 2)]
    digest, rendered = composed(NLP, ps)
    assert len(rendered.html.encode()) <= HTML_LIMIT
    left = [r for s in digest.sections for r in s.left_out]
    assert left and digest.count + len(left) == len(ps)
    assert max(scores(left)) <= min(scores(digest.shown))


def test_followed_authors_papers_come_before_the_keyword_sections() -> None:
    sub = Subscriber(email="r@example.org", keywords=("compiler",), authors=("Grace Hopper",))
    ps = [paper(i, f"A compiler, part {i}", authors=("A One",)) for i in range(1, 3)]
    ps.append(paper(9, "Notes on navigation", authors=("Grace Hopper",)))
    digest, _ = composed(sub, ps)
    assert [s.keyword for s in digest.sections] == ["Authors you follow", "compiler"]


# -- real cycles -------------------------------------------------------------------


class World:
    """A config, a loopback arXiv with made-up papers and SMTP, and a cycle to run."""

    def __init__(self, arxiv: ArxivServer, smtp: SmtpServer, folder: Path) -> None:
        self.arxiv, self.smtp, self.folder = arxiv, smtp, folder
        self.path = folder / "subscribers.yaml"
        arxiv.state.entries = []

    def configure(self, subscribers: list[dict[str, Any]]) -> None:
        data = config_dict(self.arxiv.url, self.smtp.port, subscribers, lookback_days=3)
        data["settings"]["arxiv"]["page_size"] = 1000
        self.path.write_text(yaml.safe_dump(data))

    def publish(self, n: int, title: str, abstract: str, hours_ago: int = 1) -> None:
        when = datetime.now(UTC) - timedelta(hours=hours_ago)
        self.arxiv.state.entries.append(
            make_entry(f"2611.{n:05d}", title, abstract, published=when)
        )

    def cycle(self) -> CycleReport:
        return once(self.path)

    def state(self, email: str):
        cfg = config_mod.load(self.path, env={})
        with Store.open(cfg.settings.database, readonly=True) as store:
            return store.subscriber(email), {p.id for p in store.papers()}

    def shown(self, rcpt: str) -> list[str]:
        (msg,) = [r.message for r in self.smtp.received if r.rcpt_tos == [rcpt]]
        return order(msg.get_body(("plain",)).get_content())

    def text(self, rcpt: str) -> str:
        (msg,) = [r.message for r in self.smtp.received if r.rcpt_tos == [rcpt]]
        return " ".join(msg.get_body(("plain",)).get_content().split())


@pytest.fixture
def world(arxiv: ArxivServer, smtp: SmtpServer, tmp_path: Path) -> World:
    return World(arxiv, smtp, tmp_path)


def publish_model_day(world: World) -> None:
    for i, (title, abstract) in enumerate(OTHERS):
        world.publish(i + 1, title, abstract, hours_ago=i + 1)
    world.publish(9, *GNN, hours_ago=9)  # the oldest: last in date order


def test_liked_ids_are_looked_up_in_one_request_cached_and_move_similar_papers_up(
    world: World,
) -> None:
    publish_model_day(world)
    world.arxiv.state.by_id_only = [make_entry("1905.00001", *LIKED)]
    world.configure(
        [
            {"email": "fan@example.org", "keywords": ["model"], "likes": ["1905.00001v2"]},
            {"email": "plain@example.org", "keywords": ["model"]},
        ]
    )
    world.cycle()
    lookups = [r for r in world.arxiv.state.requests if r.params.get("id_list")]
    assert [r.params["id_list"] for r in lookups] == ["1905.00001"]
    assert world.shown("fan@example.org")[0] == "2611.00009"
    assert f"like: {LIKED[0]}" in world.text("fan@example.org")
    assert world.shown("plain@example.org")[0] == "2611.00001"  # date order decides
    assert "1905.00001" in world.state("fan@example.org")[1]  # cached like any paper


def test_a_bibtex_library_moves_similar_papers_up(world: World) -> None:
    publish_model_day(world)
    (world.folder / "zotero.bib").write_text(
        "@article{kernels2019,\n"
        f"  title = {{{LIKED[0]}}},\n"
        f"  abstract = {{{LIKED[1]}}},\n"
        "  year = {2019},\n}\n",
        encoding="utf-8",
    )
    world.configure([{"email": "fan@example.org", "keywords": ["model"], "library": "zotero.bib"}])
    world.cycle()
    assert world.shown("fan@example.org")[0] == "2611.00009"
    assert f"like: {LIKED[0]}" in world.text("fan@example.org")
    assert not [r for r in world.arxiv.state.requests if r.params.get("id_list")]


def test_only_what_the_mail_shows_is_delivered_the_rest_is_skipped_for_good(
    world: World, capsys
) -> None:
    abstract = "We study the compiler and its passes in depth. " * 3
    for i in range(1, 601):
        world.publish(i, f"A compiler study, part {i}", abstract, hours_ago=1)
    world.configure([{"email": "busy@example.org", "keywords": ["compiler"]}])
    report = world.cycle()
    shown = set(world.shown("busy@example.org"))
    state, _ = world.state("busy@example.org")
    assert 150 < len(shown) < 600 and len(shown) == len(set(world.shown("busy@example.org")))
    assert set(state.delivered) == shown  # a paper not shown is never recorded delivered
    assert len(state.skipped) == 600 - len(shown) and not set(state.skipped) & shown
    assert f"{600 - len(shown)} lower-ranked matches left out" in world.text("busy@example.org")
    assert report.subscribers[0].skipped == 600 - len(shown)
    # status counts them, and they are not offered again
    assert main(["status", "--config", str(world.path)]) == 0
    out = capsys.readouterr().out
    assert f"{len(shown)} delivered, 0 pending, {600 - len(shown)} skipped" in out
    world.cycle()
    assert len(world.smtp.received) == 1


def test_dry_run_verbose_prints_titles_with_scores_in_rank_order(world: World, capsys) -> None:
    publish_model_day(world)
    world.arxiv.state.by_id_only = [make_entry("1905.00001", *LIKED)]
    world.configure([{"email": "fan@example.org", "keywords": ["model"], "likes": ["1905.00001"]}])
    assert main(["-v", "once", "--dry-run", "--config", str(world.path)]) == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("  - ")]
    scores = [float(x.split()[1]) for x in lines]
    assert lines[0].endswith(GNN[0]) and scores == sorted(scores, reverse=True)
    assert len(lines) == 4 and scores[0] > scores[1]


def test_preview_shows_the_ranked_order_and_the_like_line(world: World, capsys) -> None:
    publish_model_day(world)
    world.arxiv.state.by_id_only = [make_entry("1905.00001", *LIKED)]
    world.configure([{"email": "fan@example.org", "keywords": ["model"], "likes": ["1905.00001"]}])
    out = world.folder / "preview.html"
    assert main(["preview", "fan@example.org", "-o", str(out), "--config", str(world.path)]) == 0
    html = out.read_text(encoding="utf-8")
    ids = re.findall(r'class="title"[^>]*><a href="https://arxiv.org/abs/([^"]+)"', html)
    assert ids[0] == "2611.00009" and f"like: {LIKED[0]}" in html


def test_skipped_records_are_journaled_and_survive_a_reopen(tmp_path: Path) -> None:
    db = tmp_path / "digest.json"
    with Store.open(db, now=NOW) as store:
        store.record_delivery("r@example.org", {"2611.00001": 1}, NOW)
        store.record_skipped("r@example.org", {"2611.00002": 1, "2611.00003": 2}, NOW)
        store.flush()
        assert store.subscriber("r@example.org").skipped == {"2611.00002": 1, "2611.00003": 2}
    with Store.open(db, readonly=True) as store:
        state = store.subscriber("r@example.org")
    assert dict(state.skipped) == {"2611.00002": 1, "2611.00003": 2}
    assert dict(state.delivered) == {"2611.00001": 1}


def test_skipped_records_age_out_like_deliveries(tmp_path: Path) -> None:
    with Store.open(tmp_path / "digest.json", now=NOW) as store:
        store.record_skipped("r@example.org", {"2611.00002": 1}, NOW - timedelta(days=200))
        store.record_skipped("r@example.org", {"2611.00003": 1}, NOW)
        store.prune(NOW)
        assert dict(store.subscriber("r@example.org").skipped) == {"2611.00003": 1}


def test_golden_text_part_with_rows_and_a_like_line() -> None:
    """Full entries, then compact rows, one with "like:"; UPDATE_GOLDEN=1 rewrites it for review."""
    sub = Subscriber(email="r@example.org", keywords=("model",), max_papers_per_keyword=1)
    ps = [paper(i + 1, t, a) for i, (t, a) in enumerate(OTHERS)] + [paper(9, *GNN)]
    _, rendered = composed(sub, ps, likes=(Liked(None, *LIKED),))
    golden = GOLDEN / "digest_ranked.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(rendered.text, encoding="utf-8")
    assert rendered.text == golden.read_text(encoding="utf-8")
