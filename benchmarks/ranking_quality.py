"""Ranking quality and cost of digest.ranking.relevance on real arXiv listing days.

Quality: a reader follows one broad keyword (100+ matches in a
day) and likes 8 papers from one field, taken from *another* day's listing.
Printed for each scenario: the field's share among the reader's first 10
papers in rank order, against its base rate among all their matches and
against the share in date order (digest's order before ranking) and in
keyword-only order (ranking without likes).

Cost: building the corpus once, then scoring 1,000 readers (1-3 keywords,
half of them with 8 liked papers from a third day), over a day of 1,125
papers; compare with a cycle's wall time (benchmarks/README.md).

    python benchmarks/ranking_quality.py [--engine digest|sklearn|bm25s]

``--engine`` swaps the similarity for scikit-learn's TfidfVectorizer or
bm25s, with the same keyword strength and scaling, to compare quality; those
libraries are not dependencies of digest (see README for their weight) and
must be importable for that run.

Data: benchmarks/data/arxiv-listing_*.jsonl.gz (provenance in
tests/fixtures/PROVENANCE.md). The listings carry no submission times;
papers are dated by their arXiv number (numbers are handed out in
submission order), which is the order date-sorting would give.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.arxiv.feed import MalformedPage, parse_page  # noqa: E402
from digest.errors import ArxivQueryError  # noqa: E402
from digest.matching.rules import match_all, normalize_words  # noqa: E402
from digest.models import Liked, Match, Paper, Settings, Subscriber  # noqa: E402
from digest.ranking import relevance as rk  # noqa: E402

DATA = ROOT / "benchmarks" / "data"
DAY, LIKES_DAY, OTHER_DAY = "2026-06-09", "2026-06-16", "2026-06-30"
# broad keywords with 100+ matches; the field's base rate is printed beside
MIXED_KEYWORDS = ["model", "method", "result", "data"]
WITHIN_SCENARIOS = [("model", "cs.IT"), ("agent", "cs.MA"), ("LLM", "cs.CV"), ("model", "cs.LG")]
TOP = 10
COMPOSE_SAMPLE = 50
COST_KEYWORDS = [
    "language model",
    "agent",
    "benchmark",
    "diffusion",
    "reinforcement learning",
    "transformer",
    "graph",
    "segmentation",
    "retrieval",
    "reasoning",
    "multimodal",
    "dataset",
    "evaluation",
    "LLM",
    "video",
]


def load(day: str) -> list[Paper]:
    rows = {}
    with gzip.open(DATA / f"arxiv-listing_{day}.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            rows[r["id"]] = r
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    return [
        Paper(
            id=r["id"],
            version=1,
            title=r["title"],
            abstract=r["summary"],
            authors=tuple(r["authors"]),
            categories=tuple(r["categories"]),
            primary_category=r["categories"][0],
            published=start + timedelta(seconds=i),
            updated=start + timedelta(seconds=i),
        )
        for i, r in enumerate(sorted(rows.values(), key=lambda r: r["id"]))
    ]


# --------------------------------------------------------------------------
# Alternative similarity engines (same Rocchio centroid, same scaling)

Similarity = Callable[[Sequence[Paper], Sequence[Paper], Sequence[Paper]], list[float]]


def _words(p: Paper) -> list[str]:
    return [
        w for w in normalize_words(p.title + " . " + p.abstract) if len(w) > 1 and not w.isdigit()
    ]


def sklearn_similarity(corpus: Sequence[Paper]) -> Similarity:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(analyzer=_words, sublinear_tf=True)
    vec.fit(corpus)

    def sims(matches: Sequence[Paper], liked: Sequence[Paper], _: Sequence[Paper]) -> list[float]:
        q = vec.transform(liked).mean(axis=0).A1
        q /= math.sqrt(float((q * q).sum())) or 1.0
        return [float(x) for x in vec.transform(matches) @ q]

    return sims


def bm25s_similarity(corpus: Sequence[Paper]) -> Similarity:
    import bm25s

    ids = {p.id: i for i, p in enumerate(corpus)}
    retriever = bm25s.BM25()
    retriever.index([_words(p) for p in corpus], show_progress=False)

    def sims(matches: Sequence[Paper], liked: Sequence[Paper], _: Sequence[Paper]) -> list[float]:
        query = [w for p in liked for w in _words(p)]
        scores = retriever.get_scores(query)
        top = max(float(scores.max()), 1e-9)
        return [float(scores[ids[m.id]]) / top for m in matches]

    return sims


def ranked_with(
    engine: Similarity, matches: Sequence[Match], liked: Sequence[Paper], corpus: rk.Corpus
) -> list[Match]:
    sims = engine([m.paper for m in matches], liked, ())
    scale = max([rk.SIM_FLOOR, *sims])
    spec = rk.specificity(matches, corpus.size)
    scored = [
        rk.Ranked(m, round(rk.keyword_strength(m, spec) + rk.LIKE_WEIGHT * s / scale, 9))
        for m, s in zip(matches, sims, strict=True)
    ]
    return [r.match for r in rk.order_section(scored)]


# --------------------------------------------------------------------------


def share(matches: Sequence[Match], field: str) -> float:
    top = matches[:TOP]
    return sum(field in m.paper.categories for m in top) / max(len(top), 1)


def recorded_papers() -> list[Paper]:
    """Every paper in the recorded API responses of tests/fixtures (143, mostly cs.SE)."""
    papers: dict[str, Paper] = {}
    for path in sorted((ROOT / "tests" / "fixtures").glob("api_*.xml")):
        try:
            page = parse_page(path.read_bytes())
        except (MalformedPage, ArxivQueryError):
            continue  # the error responses
        papers.update((p.id, p) for p in page.papers)
    return sorted(papers.values(), key=lambda p: p.id)


def scenario(
    engine_name: str,
    day: Sequence[Paper],
    liked: Sequence[Paper],
    keyword: str,
    field: str,
) -> None:
    reader = Subscriber(email="r@example.org", keywords=(keyword,))
    matches = match_all(day, reader)
    corpus = rk.build_corpus(day)
    base = sum(field in m.paper.categories for m in matches) / len(matches)
    by_date = sorted(matches, key=lambda m: (m.paper.published, m.paper.id), reverse=True)
    kw_only = [r.match for r in rk.rank(matches, corpus)]
    likes = 0
    if engine_name == "digest":
        profile = rk.build_profile(corpus, [Liked(p.id, p.title, p.abstract) for p in liked])
        ranked = rk.rank(matches, corpus, profile)
        ordered = [r.match for r in ranked]
        likes = sum(r.like is not None for r in ranked[:TOP])
    else:
        engine = sklearn_similarity(day) if engine_name == "sklearn" else bm25s_similarity(day)
        ordered = ranked_with(engine, matches, liked, corpus)
    print(
        f"{keyword:<10} {field:<6} {len(matches):>7} {base:>6.3f} "
        f"{share(by_date, field):>6.2f} {share(kw_only, field):>7.2f} "
        f"{share(ordered, field):>6.2f} {likes:>5}"
    )


HEADER = (
    f"{'keyword':<10} {'field':<6} {'matches':>7} {'base':>6} {'date':>6} "
    f"{'kw-only':>7} {'ranked':>6} {'like:':>5}"
)


def quality(engine_name: str) -> None:
    day = load(DAY)
    recorded = recorded_papers()
    liked = [p for p in recorded if "cs.SE" in p.categories][:8]
    # one day: the recorded papers are older, so give every paper of the mix a
    # submission time in the same day, in a fixed shuffled order
    mixed = day + [p for p in recorded if p not in liked]
    random.Random(DAY).shuffle(mixed)
    start = datetime.fromisoformat(DAY).replace(tzinfo=UTC)
    mixed = [
        dataclasses.replace(p, published=start + timedelta(seconds=i)) for i, p in enumerate(mixed)
    ]
    print(f"Ranking quality ({engine_name}): share of the field among the first {TOP} papers")
    print(
        f"\nA. Fields apart: listing {DAY} ({len(day)} papers) + {len(mixed) - len(day)} papers "
        f"of the recorded API responses; 8 liked cs.SE papers held out of them"
    )
    print(HEADER)
    for keyword in MIXED_KEYWORDS:
        scenario(engine_name, mixed, liked, keyword, "cs.SE")
    other = [p for p in load(LIKES_DAY) if p.id not in {d.id for d in day}]
    print(
        f"\nB. Fields within cs.AI/CL/CV (cross-list categories): listing {DAY}; "
        f"8 liked papers of the field from {LIKES_DAY}"
    )
    print(HEADER)
    for keyword, field in WITHIN_SCENARIOS:
        scenario(engine_name, day, [p for p in other if field in p.categories][:8], keyword, field)


def cost(n_readers: int) -> None:
    papers = {p.id: p for day in (DAY, LIKES_DAY) for p in load(day)}
    pool = load(OTHER_DAY)
    rng = random.Random(10)
    readers = []
    for i in range(n_readers):
        sub = Subscriber(f"u{i}@example.org", tuple(rng.sample(COST_KEYWORDS, rng.randint(1, 3))))
        likes = [Liked(None, p.title, p.abstract) for p in rng.sample(pool, 8)] if i % 2 else []
        readers.append((sub, likes))
    from digest import compose  # here: --engine runs need only the ranking

    day = list(papers.values())
    # baseline: CPU the cycle spends on the same readers without ranking
    # (matching every reader, composing a sample of their mails)
    m0 = time.process_time()
    matches = [match_all(day, sub) for sub, _ in readers]
    m1 = time.process_time()
    sample = readers[:: max(1, n_readers // COMPOSE_SAMPLE)]
    unranked = rk.build_corpus(())  # every score is keyword strength against no background
    for sub, _ in sample:
        ms = rk.rank(match_all(day, sub), unranked)
        compose.compose(sub, ms, Settings(), cycle_id="bench", created=datetime.now(UTC))
    compose_cpu = (time.process_time() - m1) / len(sample) * n_readers

    # CPU time: the figure that does not depend on what else the machine runs
    t0 = time.process_time()
    corpus = rk.build_corpus(day)
    t1 = time.process_time()
    ranked = 0
    for (_, likes), ms in zip(readers, matches, strict=True):
        profile = rk.build_profile(corpus, likes) if likes else rk.NO_PROFILE
        ranked += len(rk.rank(ms, corpus, profile))
    t2 = time.process_time()
    print(
        f"\nCost: {len(day)} papers, {n_readers} readers (half with 8 likes), "
        f"{ranked} matches ranked ({ranked / n_readers:.0f} per reader), CPU seconds:"
    )
    print(f"  corpus built once   {t1 - t0:6.2f} s")
    print(f"  scoring all readers {t2 - t1:6.2f} s  ({(t2 - t1) / n_readers * 1000:.1f} ms/reader)")
    print(f"  total               {t2 - t0:6.2f} s")
    base = (m1 - m0) + compose_cpu
    print(
        f"  baseline: matching {m1 - m0:.2f} s + composing {compose_cpu:.2f} s "
        f"(from {len(sample)} readers) = {base:.2f} s CPU, before any network wait"
    )
    print(f"  ranking adds {(t2 - t0) / base:.0%} to that CPU")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", choices=["digest", "sklearn", "bm25s"], default="digest")
    ap.add_argument("--no-cost", action="store_true", help="quality only")
    ap.add_argument("--readers", type=int, default=1000, help="readers for the cost figure")
    args = ap.parse_args()
    quality(args.engine)
    if args.engine == "digest" and not args.no_cost:
        cost(args.readers)


if __name__ == "__main__":
    main()
