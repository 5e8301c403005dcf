"""Two real digests of a real listing day, as their readers' mail clients show the text part.

A heavy reader (robotics: nine broad keywords, 8 liked robotics papers from
another day) and a reader whose one keyword misses most of what they like
(vision: follows "segmentation", likes diffusion papers), whose digest
carries a section beyond the keywords. The day is
benchmarks/data/arxiv-listing_2026-06-09; the likes come from 2026-06-16
(benchmarks/ranking_quality.py). Prints the first ``--lines`` lines of each
text part (what the reader sees first) and, for the second, its section
beyond the keywords.

    python benchmarks/digest_excerpts.py [--lines 60]
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.ranking_quality import DAYS, load  # noqa: E402
from benchmarks.visibility import BEYOND_READERS, HEAVY, the_day  # noqa: E402
from digest import ranking as rank  # noqa: E402
from digest.compose.render import compose  # noqa: E402
from digest.compose.selection import pick_beyond  # noqa: E402
from digest.cycle.plan import Beyond, beyond_candidates, liked_categories  # noqa: E402
from digest.matching.rules import contains_phrase, match_all  # noqa: E402
from digest.models import Liked, Match, Settings, SmtpSettings, Subscriber  # noqa: E402
from digest.replies import ReplySecret, reader_links  # noqa: E402

WHEN = datetime(2026, 6, 10, 7, tzinfo=UTC)
SETTINGS = Settings(smtp=SmtpSettings(sender="Daily Papers <papers@digest.example.org>"))
SECRET = ReplySecret(b"excerpts-benchmark-secret-012345")


def excerpt(
    name: str,
    keywords: tuple[str, ...],
    field: tuple[str, ...],
    lines: int,
    beyond_section: bool = False,
) -> str:
    papers = the_day()
    corpus = rank.build_corpus(papers)
    pool = load(DAYS[1])  # the likes come from another day
    known = {p.id: p for p in (*papers, *pool)}
    liked = [p for p in pool if any(contains_phrase(p.title, w) for w in field)]
    liked = random.Random(name).sample(liked, min(8, len(liked)))
    likes = tuple(Liked(p.id, p.title, p.abstract) for p in liked)
    sub = Subscriber(f"{name}@example.org", keywords, likes=likes)
    matches = match_all(papers, sub)
    profile = rank.build_profile(corpus, likes, papers=known)
    ranked = rank.rank(matches, corpus, profile)
    categories = liked_categories(likes, known)
    handled = {m.paper.id: 1 for m in matches}
    candidates = beyond_candidates(sub, handled, Beyond.of(papers, known), categories)
    scored = rank.rank((*matches, *(Match(p, ()) for p in candidates)), corpus, profile)
    offers = pick_beyond(scored, categories)

    def links(ids: tuple[str, ...]) -> object:
        operator = "papers@digest.example.org"
        return reader_links(SECRET, operator, sub.email, ids, issued=WHEN.date())

    # the section beyond the keywords is the first thing the 100 KB limit drops:
    # the second reader shows 10 papers in full (max_papers_per_keyword) to keep it
    settings = replace(SETTINGS, max_papers_per_keyword=10) if beyond_section else SETTINGS
    _digest, rendered = compose(
        sub, ranked, settings, cycle_id="x", created=WHEN, links=links, beyond=offers
    )
    head = [f"Subject: {rendered.subject}", ""]
    body = [line for line in rendered.text.splitlines() if "mailto:" not in line]
    marker = next((i for i, line in enumerate(body) if line.startswith("BEYOND YOUR")), None)
    if not beyond_section or marker is None:
        return "\n".join([*head, *body[:lines]])
    return "\n".join([*head, *body[:12], "[…]", *body[marker - 1 : marker - 1 + lines]])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=60)
    opts = parser.parse_args()
    readers = {name: (k, f) for name, k, f in (*HEAVY, *BEYOND_READERS)}
    for name in ("robotics", "vision"):
        keywords, field = readers[name]
        print(f"==== {name}: follows {', '.join(keywords)}; likes 8 papers on {', '.join(field)}")
        print(excerpt(name, keywords, field, opts.lines, beyond_section=name == "vision"))
        print()


if __name__ == "__main__":
    main()
