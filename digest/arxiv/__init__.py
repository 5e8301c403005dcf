"""The arXiv API: query strings, polite fetching over HTTP, and the Atom feed parsed into papers."""

from __future__ import annotations

from digest.arxiv.fetch import ArxivClient, Progress
from digest.arxiv.query import (
    Terms,
    Unfit,
    build_queries,
    category_query,
    id_batches,
    last_announced,
    unfit_terms,
    window,
)

__all__ = [
    "ArxivClient",
    "Progress",
    "Terms",
    "Unfit",
    "build_queries",
    "category_query",
    "id_batches",
    "last_announced",
    "unfit_terms",
    "window",
]
