"""What "matches" means: keyword and author rules, and the cycle's index of them."""

from __future__ import annotations

from digest.matching.index import PaperIndex
from digest.matching.rules import (
    by_author,
    highlight_spans,
    in_categories,
    match_paper,
    mentions,
    normalize,
    normalize_words,
    paper_text,
    phrase_key,
    unique_phrases,
)

__all__ = [
    "PaperIndex",
    "by_author",
    "highlight_spans",
    "in_categories",
    "match_paper",
    "mentions",
    "normalize",
    "normalize_words",
    "paper_text",
    "phrase_key",
    "unique_phrases",
]
