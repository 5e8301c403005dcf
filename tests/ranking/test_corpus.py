"""The corpus: field vectors weighted by how rare each category is today."""

from __future__ import annotations

import pytest

from digest import ranking
from tests.support.ranking_data import VISION, paper

DAY = [
    *(paper(f"2606.0080{i}", "Pixels", VISION, categories=("cs.CV",)) for i in range(9)),
    paper("2606.00810", "Grasping", "Robots.", categories=("cs.RO", "cs.CV")),
    paper("2606.00811", "Parsing", "Sentences.", categories=("cs.CL",)),
]


def test_a_rare_category_weighs_more_than_a_common_one() -> None:
    corpus = ranking.build_corpus(DAY)
    assert corpus.rarity("cs.RO") > corpus.rarity("cs.CV") > 0
    vec = corpus.field_vector(("cs.CV", "cs.RO"))  # primary cs.CV, cross-listed to cs.RO
    assert vec["cs.RO"] > vec["cs.CV"]
    assert sum(x * x for x in vec.values()) == pytest.approx(1.0)


def test_a_primary_category_weighs_more_than_the_same_as_a_cross_list() -> None:
    corpus = ranking.build_corpus(DAY)
    primary = corpus.field_vector(("cs.RO", "cs.CV"))
    cross = corpus.field_vector(("cs.CV", "cs.RO"))
    assert primary["cs.RO"] > cross["cs.RO"]


def test_a_category_every_paper_carries_says_nothing() -> None:
    assert ranking.build_corpus(DAY[:9]).field_vector(("cs.CV",)) == {}
    assert ranking.build_corpus([]).field_vector(("cs.RO",)) == {}
