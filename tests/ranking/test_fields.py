"""Category names for the reason line."""

from __future__ import annotations

from digest import ranking


def test_category_names_are_arxivs_and_unknown_ones_stay_codes() -> None:
    assert ranking.field_name("cs.RO") == "Robotics"
    assert ranking.field_name("quant-ph") == "Quantum Physics"
    assert ranking.field_name("cs.XX") == "cs.XX"
