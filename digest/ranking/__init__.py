"""Relevance order inside a digest's sections: pure, no I/O."""

from __future__ import annotations

from digest.ranking.relevance import (
    NO_PROFILE,
    Corpus,
    build_corpus,
    build_profile,
    order_section,
    rank,
)

__all__ = [
    "NO_PROFILE",
    "Corpus",
    "build_corpus",
    "build_profile",
    "order_section",
    "rank",
]
