"""Requests per cycle: batched queries versus one query per keyword (the baseline).

arXiv's terms allow one request every 3 seconds, so requests per cycle is
the cost that matters: it sets the cycle's minimum duration. Prints, for a
growing number of subscribers following keywords drawn from a realistic
vocabulary, how many query strings digest builds and how many a naive client
(one query per distinct keyword) would send, with the seconds each costs at
3 s per request. Pages beyond the first are the same for both and left out.

    python benchmarks/requests_per_cycle.py
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from digest.models import Subscriber
from digest.plan import fetch_terms
from digest.query import build_queries

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


if __name__ == "__main__":
    main()
