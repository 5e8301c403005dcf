"""The Daily Papers page: its exact shape, true matches only, escaping, atomic regeneration."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from digest.cli.entry import main
from digest.compose import archive
from digest.errors import DigestError
from digest.matching.rules import contains_phrase
from digest.models import Paper, Subscriber
from tests.support.configs import config_dict

NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)


def paper(
    i: int, title: str, abstract: str = "Text.", comment: str | None = None, days_ago: float = 0
) -> Paper:
    t = NOW - timedelta(days=days_ago, minutes=i)
    return Paper(
        id=f"2611.{i:05d}",
        version=2,
        title=title,
        abstract=abstract,
        authors=("A",),
        categories=("cs.LG",),
        primary_category="cs.LG",
        published=t,
        updated=t,
        comment=comment,
    )


def test_exact_shape() -> None:
    page = archive.render(
        ["graph", "compiler"],
        [
            paper(1, "Graph networks", "An abstract.", comment="8 pages"),
            paper(2, "A compiler", "Another."),
        ],
        NOW,
    )
    assert page.splitlines()[:6] == [
        "# Daily Papers",
        "",
        archive.INTRO,
        "",
        "Last update: 2026-11-30",
        "",
    ]
    assert (
        "\n## graph\n\n| **Title** | **Date** | **Abstract** | **Comment** |\n"
        "| --- | --- | --- | --- |\n| **[Graph networks](https://arxiv.org/abs/2611.00001v2)** "
        "| 2026-11-30 | <details><summary>Show</summary><p>An abstract.</p></details> "
        "| 8 pages |\n" in page
    )
    assert "\n## compiler\n" in page
    assert page.index("## graph") < page.index("## compiler")


def test_every_row_matches_its_keyword_never_the_same_unrelated_papers() -> None:
    papers = [paper(i, f"Paper {i} about {'graphs' if i % 2 else 'compilers'}") for i in range(40)]
    papers += [paper(100 + i, f"Unrelated {i}") for i in range(20)]
    page = archive.render(["graph", "compiler"], papers, NOW)
    for section in page.split("\n## ")[1:]:
        keyword = section.splitlines()[0]
        titles = re.findall(r"\*\*\[(.+?)\]\(", section)
        assert titles and all(contains_phrase(t, keyword) for t in titles)
        assert not any(t.startswith("Unrelated") for t in titles)


def test_at_most_100_rows_newest_first() -> None:
    papers = [paper(i, f"Graph {i}", days_ago=i / 10) for i in range(150)]
    rows = [
        ln for ln in archive.render(["graph"], papers, NOW).splitlines() if ln.startswith("| **[")
    ]
    assert len(rows) == 100
    dates_ids = [re.search(r"abs/2611\.(\d+)v", r).group(1) for r in rows]
    assert dates_ids == [f"{i:05d}" for i in range(100)]


def test_the_page_escapes_a_paper_id_it_links_to() -> None:
    # the feed admits arXiv identifiers only; the page does not rely on it
    hostile = replace(paper(1, "Graph"), id="<img src=x onerror=alert(1)>) [x](y")
    page = archive.render(["graph"], [hostile], NOW)
    (row,) = [ln for ln in page.splitlines() if ln.startswith("| **[")]
    assert "<img" not in page and ") [x]" not in row and " " not in row.split("](")[1][:40]
    assert "(https://arxiv.org/abs/%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E%29" in row


def test_hostile_titles_and_comments_cannot_break_the_table() -> None:
    hostile = "Graph | col <script>alert(1)</script> [x](javascript:y) *bold*\nnewline"
    long_comment = "Graph | " + "<b>c</b> " * 20
    page = archive.render(["graph"], [paper(1, hostile, hostile, comment=long_comment)], NOW)
    (row,) = [ln for ln in page.splitlines() if ln.startswith("| **[")]
    assert len(re.findall(r"(?<!\\)\|", row)) == 5  # exactly four cells
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;" in row and "\\[x\\]" in row and "\\*bold\\*" in row
    assert "\n" not in row
    assert row.endswith("</p></details> |")  # the long comment is collapsed


def test_keywords_in_first_seen_order_once() -> None:
    subs = [Subscriber("a@x.org", ("Graph", "compiler")), Subscriber("b@x.org", ("graphs", "LLM"))]
    assert archive.keywords_in_order(subs) == ("Graph", "compiler", "LLM")


def test_pruning_keeps_what_the_page_shows() -> None:
    old = [replace(paper(i, f"Graph {i}"), published=NOW - timedelta(days=400)) for i in range(3)]
    assert archive.kept_ids(archive.select(["graph"], old)) == {p.id for p in old}


def test_digest_archive_command_and_regeneration_after_each_cycle(
    arxiv, smtp, write_config, capsys
) -> None:
    cfg = write_config(config_dict(arxiv.url, smtp.port))
    assert main(["once", "--config", str(cfg)]) == 0
    capsys.readouterr()
    assert main(["archive", "--config", str(cfg)]) == 0
    page = capsys.readouterr().out
    assert page.startswith("# Daily Papers\n")
    assert [ln[3:] for ln in page.splitlines() if ln.startswith("## ")] == [
        "deep learning",
        "proton",
        "metamorphic testing",
        "electron",
    ]
    out = cfg.parent / "page" / "README.md"
    assert main(["archive", "--config", str(cfg), "-o", str(out)]) == 0
    assert out.read_text() == page

    # settings.archive: rewritten atomically at the end of every cycle
    data = yaml.safe_load(cfg.read_text())
    data["settings"]["archive"] = "site/papers.md"
    cfg.write_text(yaml.safe_dump(data))
    target = cfg.parent / "site" / "papers.md"
    assert main(["once", "--config", str(cfg)]) == 0
    assert target.read_text().startswith("# Daily Papers\n")
    before = target.stat().st_ino
    assert main(["once", "--config", str(cfg)]) == 0
    assert target.stat().st_ino != before  # replaced, not rewritten in place
    assert not list(target.parent.glob(".papers.md.*"))  # no temporary files left
    assert oct(target.stat().st_mode & 0o777) == "0o644"


def test_archive_write_failure_is_readable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DigestError, match="cannot write the Daily Papers page"):
        archive.write_atomic(blocker / "page.md", "text")
