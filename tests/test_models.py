"""digest.models: the rules the value types carry (newest version wins, addresses, links)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from digest.models import (
    LIST_NAME,
    Paper,
    format_sender,
    newest_first,
    newest_versions,
    split_address,
)

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PAPER = Paper(
    id="2612.01234",
    version=1,
    title="A title",
    abstract="An abstract.",
    authors=("Ada Lovelace",),
    categories=("cs.LG",),
    primary_category="cs.LG",
    published=T0,
    updated=T0,
)


def test_links_are_made_from_the_id_and_version() -> None:
    v3 = replace(PAPER, version=3)
    assert v3.abs_url == "https://arxiv.org/abs/2612.01234"
    assert v3.pdf_url == "https://arxiv.org/pdf/2612.01234v3"


def test_the_newest_version_wins_whichever_source_has_it() -> None:
    v2 = replace(PAPER, version=2, title="Revised")
    assert newest_versions([PAPER], [v2])["2612.01234"].title == "Revised"
    assert newest_versions([v2], [PAPER])["2612.01234"].title == "Revised"


def test_earlier_sources_win_a_tie() -> None:
    cached, fetched = replace(PAPER, title="cached"), replace(PAPER, title="fetched")
    assert newest_versions([cached], [fetched])["2612.01234"].title == "cached"


def test_newest_first_orders_by_submission_then_id() -> None:
    later = replace(PAPER, id="2612.09999", published=T0.replace(hour=10))
    same_time = replace(PAPER, id="2612.00001")
    ordered = sorted([PAPER, later, same_time], key=newest_first, reverse=True)
    assert [p.id for p in ordered] == ["2612.09999", "2612.01234", "2612.00001"]


def test_the_domain_is_what_follows_the_last_at() -> None:
    assert split_address('"a@b"@example.org') == ('"a@b"', "example.org")


def test_the_sender_setting_with_and_without_a_name() -> None:
    named = format_sender("Physics Papers <papers@example.org>")
    bare = format_sender("papers@example.org")
    assert (named.display_name, named.addr_spec) == ("Physics Papers", "papers@example.org")
    assert (bare.display_name, bare.domain) == ("", "example.org")
    assert LIST_NAME == "Daily Papers"
