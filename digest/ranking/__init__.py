"""Relevance order inside a digest's sections, and why a paper is up there: pure, no I/O."""

from __future__ import annotations

from digest.ranking.corpus import Corpus, build_corpus
from digest.ranking.fields import field_name
from digest.ranking.profile import NO_PROFILE, Profile, build_profile
from digest.ranking.relevance import FIELD_REASON, order_section, rank
from digest.ranking.semantic import Embed
from digest.ranking.semantic import load as load_semantic

__all__ = [
    "FIELD_REASON",
    "NO_PROFILE",
    "Corpus",
    "Embed",
    "Profile",
    "build_corpus",
    "build_profile",
    "field_name",
    "load_semantic",
    "order_section",
    "rank",
]
