"""Requests per cycle: batched queries versus one query per keyword (the baseline).

arXiv's terms allow one request every 3 seconds, so requests per cycle is
the cost that matters: it sets the cycle's minimum duration. Prints, for a
growing number of subscribers following keywords drawn from a realistic
vocabulary, how many query strings digest builds and how many a naive client
(one query per distinct keyword) would send, with the seconds each costs at
3 s per request. Pages beyond the first are the same for both and left out.

Then an ordinary day, measured: digest's real arXiv client against the
loopback arXiv server holding 1,700 papers submitted over the last 7 days
(about what arXiv returns for 50 broad keywords), with the old
page size (200) against the new default (1,000): requests, and whether both
fetched exactly the same papers (same recall).

Last, that day as a real cycle (``run_cycle``, a dry run: nothing is sent)
with the 50 keywords, one reader each, without likes and with half of the
readers liking two papers of the week: the requests by kind, the keyword
queries against the category query that brings the papers beyond their
keywords (one query for the union of the liked categories, at most
``BEYOND_PAGES`` pages). The loopback server answers every query with all
its papers, so each query costs its full pages, as a broad day would.

    python benchmarks/requests_per_cycle.py
"""

from __future__ import annotations

import asyncio
import random
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tempfile  # noqa: E402

from digest.arxiv.feed import parse_page  # noqa: E402
from digest.arxiv.fetch import ArxivClient  # noqa: E402
from digest.arxiv.query import build_queries, window  # noqa: E402
from digest.cycle.inputs import Options, collaborators  # noqa: E402
from digest.cycle.plan import fetch_terms  # noqa: E402
from digest.cycle.run import BEYOND_PAGES, run_cycle  # noqa: E402
from digest.models import ArxivSettings, Config, Liked, Settings, Subscriber  # noqa: E402
from digest.store import Store  # noqa: E402
from tests.support.arxiv_server import ArxivServer, load_entries, redate  # noqa: E402

DAY_PAPERS = 1700

VOCAB = [
    "reinforcement learning",
    "graph neural network",
    "compiler",
    "large language model",
    "program synthesis",
    "diffusion model",
    "quantum error correction",
    "dark matter",
    "gravitational wave",
    "topological insulator",
    "protein folding",
    "causal inference",
    "federated learning",
    "transformer",
    "neural radiance field",
    "optimal transport",
    "bayesian optimization",
    "contrastive learning",
    "knowledge distillation",
    "mixture of experts",
    "sparse attention",
    "retrieval augmented generation",
    "spiking neural network",
    "exoplanet",
    "black hole",
    "superconductivity",
    "type theory",
    "formal verification",
    "model checking",
    "differential privacy",
    "adversarial robustness",
    "speech recognition",
    "machine translation",
    "question answering",
    "image segmentation",
    "object detection",
    "point cloud",
    "graph theory",
    "combinatorial optimization",
    "stochastic gradient descent",
    "neural tangent kernel",
    "meta learning",
    "continual learning",
    "active learning",
    "self supervised learning",
    "few shot learning",
    "anomaly detection",
    "time series forecasting",
    "recommender system",
    "cosmic microwave background",
]


def main() -> None:
    rng = random.Random(42)
    now = datetime(2026, 11, 30, 7, tzinfo=UTC)
    start = now - timedelta(days=7)
    print(
        f"{'subscribers':>11} {'keywords':>8} {'digest':>7} {'baseline':>9} "
        f"{'digest s':>9} {'baseline s':>10}"
    )
    for n in (1, 10, 100, 1000):
        subs = [
            Subscriber(f"u{i}@example.org", tuple(rng.sample(VOCAB, rng.randint(1, 5))))
            for i in range(n)
        ]
        terms = fetch_terms(subs)
        queries = build_queries(
            terms, start, now, api_url="https://export.arxiv.org/api/query", page_size=200
        )
        baseline = len(terms.keywords)
        print(
            f"{n:>11} {len(terms.keywords):>8} {len(queries):>7} {baseline:>9} "
            f"{len(queries) * 3:>9} {baseline * 3:>10}"
        )


def week_of_papers(n: int = DAY_PAPERS) -> tuple[bytes, list[bytes]]:
    """``n`` recorded entries re-numbered and spread over the last 7 days, newest first."""
    header, entries = load_entries(["api_new_2026-04_all-testing_start-0_max-100.xml"])
    now = datetime.now(UTC)
    step = timedelta(days=7) / n
    out = []
    for i in range(n):
        e = re.sub(rb"abs/(\d{4}\.\d{4,5})", b"abs/2611.%05d" % i, entries[i % len(entries)])
        out.append(redate(e, now - step * (i + 1)))
    return header, out


def ordinary_day(page_size: int) -> tuple[int, frozenset[str]]:
    header, entries = week_of_papers()
    subs = [Subscriber(f"u{i}@example.org", (k,)) for i, k in enumerate(VOCAB)]
    now = datetime.now(UTC)
    start, end = window(now, now - timedelta(days=1), lookback_days=2)
    with ArxivServer(header, entries) as arxiv:
        settings = ArxivSettings(api_url=arxiv.url, request_interval=0.0, page_size=page_size)
        queries = build_queries(
            fetch_terms(subs), start, end, api_url=arxiv.url, page_size=page_size
        )

        async def go() -> frozenset[str]:
            async with ArxivClient(settings) as client:
                return frozenset(p.id for p in await client.fetch_all(queries))

        ids = asyncio.run(go())
        return len(arxiv.state.requests), ids


def ordinary_day_table() -> None:
    print(f"\nan ordinary day: {len(VOCAB)} keywords, {DAY_PAPERS} papers in the 7-day window")
    print(
        f"{'page size':>9} {'requests':>8} {'politeness s':>12} {'papers':>7} {'same papers':>11}"
    )
    base_requests, base_ids = ordinary_day(200)
    for size in (200, 1000):
        requests, ids = (base_requests, base_ids) if size == 200 else ordinary_day(size)
        label = "baseline" if size == 200 else ("yes" if ids == base_ids else "NO")
        print(f"{size:>9} {requests:>8} {(requests - 1) * 3:>12} {len(ids):>7} {label:>11}")


def ordinary_cycle(likes: bool) -> dict[str, int]:
    """A dry-run cycle of the ordinary day, 50 readers of one keyword each: requests by kind."""
    header, entries = week_of_papers()
    ids = [p.id for p in parse_page(header + b"".join(entries) + b"</feed>").papers]
    subs = tuple(
        Subscriber(
            f"u{i}@example.org",
            (k,),
            likes=(Liked(ids[7 * i]), Liked(ids[7 * i + 3])) if likes and i % 2 else (),
        )
        for i, k in enumerate(VOCAB)
    )
    now = datetime.now(UTC)
    with ArxivServer(header, entries) as arxiv, tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            database=Path(tmp) / "digest.json",
            arxiv=ArxivSettings(api_url=arxiv.url, request_interval=0.0, page_size=1000),
        )
        config = Config(settings, subs, Path(tmp) / "subscribers.yaml")

        async def go() -> None:
            with Store.open(settings.database, now=now) as store:
                options = Options(dry_run=True)
                async with collaborators(settings, options, now=now) as collab:
                    await run_cycle(config, store, collab, now=now, options=options)

        asyncio.run(go())
        kinds = {"keyword queries": 0, "liked-paper lookups": 0, "category query": 0}
        for r in arxiv.state.requests:
            query = r.params.get("search_query", "")
            kind = "category query" if query.startswith("(cat:") else "keyword queries"
            kinds["liked-paper lookups" if "id_list" in r.params else kind] += 1
        return kinds


def beyond_table() -> None:
    print(
        f"\nthe same day as a cycle (dry run), {len(VOCAB)} keywords, one reader each; "
        f"the category query capped at {BEYOND_PAGES} pages"
    )
    print(f"{'':<28} {'keyword':>8} {'lookups':>8} {'category':>8} {'total':>6}")
    for label, likes in (("no likes", False), ("half the readers like 2", True)):
        k = ordinary_cycle(likes)
        total = sum(k.values())
        print(
            f"{label:<28} {k['keyword queries']:>8} {k['liked-paper lookups']:>8} "
            f"{k['category query']:>8} {total:>6}"
        )


if __name__ == "__main__":
    main()
    ordinary_day_table()
    beyond_table()
