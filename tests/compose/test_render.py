"""Composing the digest: selection, escaping, LaTeX, size, headers, templates, golden text."""

from __future__ import annotations

import email
import os
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path

import pytest

from digest import ranking as rank
from digest.compose.render import build_message, compose, render
from digest.compose.selection import HTML_LIMIT, build_digest
from digest.compose.view import ACKNOWLEDGEMENT, excerpt, highlight
from digest.errors import TemplateError
from digest.matching.rules import match_all
from digest.models import Match, Paper, Ranked, Settings, SmtpSettings, Subscriber
from tests.support.paths import GOLDEN, ROOT

NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
SETTINGS = Settings(smtp=SmtpSettings(sender="Daily Papers <papers@digest.test>"))
HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)> "quoted" \'single\''


def paper(i: int, title: str, abstract: str = "An abstract.", **kw) -> Paper:
    t = NOW - timedelta(hours=i)
    base = Paper(
        id=f"2611.{i:05d}",
        version=1,
        title=title,
        abstract=abstract,
        authors=("Ada Lovelace", "Alan Turing"),
        categories=("cs.LG", "stat.ML"),
        primary_category="cs.LG",
        published=t,
        updated=t,
    )
    return replace(base, **kw)


ALICE = Subscriber(
    email="alice@example.org", name="Alice Example", keywords=("graph neural network", "compiler")
)


def matches(papers, sub=ALICE):
    """The subscriber's matches, ranked as the cycle ranks them (keywords only, no likes)."""
    return rank.rank(match_all(papers, sub), rank.build_corpus(papers))


def parts(settings=SETTINGS, papers=None, sub=ALICE):
    papers = papers or [
        paper(
            1,
            "Graph Neural Networks for Compilers",
            r"We bound the cost by $O(n^2)$ for graph neural networks.",
            comment=r"12 pages, $\alpha$-version",
        )
    ]
    digest, rendered = compose(
        sub, matches(papers, sub), settings, cycle_id="20261130.abc", created=NOW
    )
    msg = build_message(digest, rendered, settings)
    parsed = email.message_from_bytes(bytes(msg), policy=policy.default)
    return digest, rendered, parsed


def test_sections_follow_the_subscriber_order_and_each_paper_appears_once() -> None:
    ps = [
        paper(1, "A compiler"),
        paper(2, "Graph neural networks and a compiler"),
        paper(3, "Graph neural network"),
    ]
    d = build_digest(ALICE, matches(ps), max_per_keyword=25, cycle_id="c", created=NOW)
    assert [s.keyword for s in d.sections] == ["graph neural network", "compiler"]
    assert [r.match.paper.id for r in d.sections[0].full] == ["2611.00002", "2611.00003"]
    assert [r.match.paper.id for r in d.sections[1].full] == ["2611.00001"]
    assert d.count == 3
    _, rendered, _ = parts(papers=ps)
    assert "also matches: compiler" in rendered.text


def test_beyond_the_limit_papers_are_compact_rows_in_rank_order() -> None:
    ps = [paper(i, f"A compiler {i}") for i in range(1, 31)]
    d = build_digest(ALICE, matches(ps), max_per_keyword=25, cycle_id="c", created=NOW)
    (section,) = d.sections
    assert len(section.full) == 25 and len(section.compact) == 5 and not section.left_out
    assert d.count == 30 and set(d.delivers) == {p.id for p in ps}
    # equal scores: newest first, full entries before the rows
    assert [r.match.paper.id for r in section.shown] == [p.id for p in ps]


def test_the_reason_a_paper_is_up_there_shows_under_it_in_both_parts() -> None:
    # one paper in full, one as a row: each says why the ranking lifted it
    full, row = paper(1, "Compiler passes"), paper(2, "Compiler caches")
    ranked = [
        Ranked(Match(full, ("compiler",)), 2.0, reason="your field: Robotics"),
        Ranked(Match(row, ("compiler",)), 1.0, reason="like: Register allocation"),
    ]
    settings = replace(SETTINGS, max_papers_per_keyword=1)
    _, rendered = compose(ALICE, ranked, settings, cycle_id="20261130.abc", created=NOW)
    text = " ".join(rendered.text.split())
    for reason in ("your field: Robotics", "like: Register allocation"):
        assert reason in rendered.html
        assert reason in text


def test_multipart_structure_and_headers() -> None:
    _digest, _rendered, msg = parts()
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["From"] == "Daily Papers <papers@digest.test>"
    assert msg["To"] == "Alice Example <alice@example.org>"
    assert msg["Subject"] == "1 new arXiv paper: graph neural network"
    assert msg["Date"] == "Mon, 30 Nov 2026 07:00:00 +0000"
    assert re.fullmatch(r"<digest\.20261130\.abc\.[0-9a-f]{20}@digest\.test>", msg["Message-ID"])
    assert msg["List-Id"] == "Daily Papers <daily-papers.digest.test>"
    assert msg["List-Unsubscribe"] == "<mailto:papers@digest.test?subject=unsubscribe>"
    assert msg["Auto-Submitted"] == "auto-generated"
    for part in msg.iter_parts():
        assert part.get_content_charset() == "utf-8"


def test_message_id_is_stable_for_subscriber_and_cycle() -> None:
    a = parts()[2]["Message-ID"]
    assert parts()[2]["Message-ID"] == a
    other = replace(ALICE, email="bob@example.org")
    assert parts(sub=other)[2]["Message-ID"] != a


def test_hostile_fields_are_escaped_in_html_and_safe_in_headers() -> None:
    p = paper(
        1, f"Compiler {HOSTILE}", f"A compiler. {HOSTILE}", authors=(HOSTILE, "B"), comment=HOSTILE
    )
    _, _rendered, msg = parts(papers=[p])
    html = msg.get_body(("html",)).get_content()
    assert "<script" not in html.lower() and "<img" not in html.lower()
    assert "onerror=alert" not in html.replace("onerror=alert(1)&gt;", "")
    assert "&lt;script&gt;" in html and "&amp;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert not re.search(r"<[^>]*onerror", html)  # no attribute could break out
    text = msg.get_body(("plain",)).get_content()
    assert HOSTILE in " ".join(text.split())  # plain text shows it literally
    assert "\n" not in msg["Subject"]


def test_crlf_in_a_title_cannot_inject_headers() -> None:
    p = paper(1, "A compiler\r\nBcc: victim@example.net")
    _, _, msg = parts(papers=[p])
    assert msg["Bcc"] is None


def test_html_has_no_scripts_images_or_remote_resources() -> None:
    _, rendered, _ = parts()
    html = rendered.html.lower()
    for banned in ("<script", "<img", "<link", "<iframe", "<form", "@import", "http://"):
        assert banned not in html
    assert all(
        h.startswith(("https://", "mailto:", "#")) for h in re.findall(r'href="([^"]*)"', html)
    )
    assert 'style="' in html  # CSS was inlined
    assert "prefers-color-scheme: dark" in html  # dark mode kept for clients that read it
    assert 'width="640"' in html


def test_math_is_made_readable_in_both_parts() -> None:
    _, rendered, _ = parts()
    for body in (rendered.text, rendered.html):
        assert "$" not in body and "O(n²)" in body
    assert "α-version" in rendered.text


def test_matched_words_are_highlighted() -> None:
    _, rendered, _ = parts()
    assert re.search(r"<mark[^>]*>graph neural networks</mark>", rendered.html)


def test_highlight_segments_split_without_losing_text() -> None:
    segs = highlight("Graph Neural-Networks, and graph neural nets", ["graph neural network"])
    assert "".join(s.text for s in segs) == "Graph Neural-Networks, and graph neural nets"
    assert [s.text for s in segs if s.mark] == ["Graph Neural-Networks"]


def test_inflected_forms_that_matching_accepts_are_highlighted() -> None:
    sub = replace(ALICE, keywords=("galaxy",))
    p = paper(1, "Dwarf galaxies", "Every galaxy here is a dwarf galaxy; policies differ.")
    _, rendered, _ = parts(papers=[p], sub=sub)
    marked = re.findall(r"<mark[^>]*>([^<]*)</mark>", rendered.html)
    assert marked == ["galaxies", "galaxy", "galaxy"]


FILLER = "We describe the instrument and its calibration in detail. " * 25  # ~1,400 chars


def test_a_match_only_past_the_cut_of_the_abstract_shows_its_sentence() -> None:
    sub = replace(ALICE, keywords=("galaxy",))
    abstract = FILLER + "Dwarf galaxies host the faintest halos. The survey ends here."
    _, rendered, _ = parts(papers=[paper(1, "An instrument paper", abstract)], sub=sub)
    text = " ".join(rendered.text.split())
    assert " … Dwarf galaxies host the faintest halos. …" in text
    assert "The survey ends here" not in text
    assert re.search(r"… <mark[^>]*>Dwarf galaxies|Dwarf <mark[^>]*>galaxies</mark>", rendered.html)
    assert "read more" in rendered.html


def test_no_sentence_is_added_when_the_match_shows_already() -> None:
    sub = replace(ALICE, keywords=("galaxy",))
    abstract = FILLER + "Dwarf galaxies host the faintest halos."
    for title, head in (("A galaxy survey", ""), ("An instrument paper", "A galaxy survey. ")):
        _, rendered, _ = parts(papers=[paper(1, title, head + abstract)], sub=sub)
        assert "faintest halos" not in rendered.text


def test_a_long_sentence_past_the_cut_is_shown_around_the_match() -> None:
    text = "Short one. In a sentence " + "that goes on " * 30 + "past a galaxy" + " and on" * 60
    at = text.index("galaxy")
    shown = excerpt(text + ". Next.", (at, at + 6))
    assert shown.startswith("… ") and shown.endswith(" …") and len(shown) <= 310
    assert "past a galaxy and on" in shown and "In a sentence" not in shown
    assert excerpt("Short one. A galaxy here! Next.", (13, 19)) == "A galaxy here! …"
    assert excerpt("A galaxy here", (2, 8)) == "A galaxy here"


def test_footer_says_why_how_to_unsubscribe_and_thanks_arxiv() -> None:
    _, rendered, _ = parts()
    for body in (rendered.text, rendered.html):
        assert ACKNOWLEDGEMENT in body
        assert "graph neural network, compiler" in body
        assert "unsubscribe" in body
        assert "not affiliated with or endorsed by arXiv" in body


def test_a_large_digest_stays_under_the_gmail_clipping_limit() -> None:
    long_abstract = ("We study graph neural networks and compilers in depth. " * 60).strip()
    sub = replace(ALICE, keywords=("graph neural network", "compiler", "transformer"))
    ps = [paper(i, f"Graph neural network {i}", long_abstract) for i in range(1, 80)]
    ps += [paper(100 + i, f"Transformer {i}", long_abstract) for i in range(80)]
    digest, rendered = compose(sub, matches(ps, sub), SETTINGS, cycle_id="c", created=NOW)
    assert len(rendered.html.encode()) < HTML_LIMIT
    assert digest.count == len(ps) and digest.left_out == 0  # nothing hidden: the rest are rows
    assert "read more" in rendered.html
    for p in ps:
        assert p.abs_url in rendered.html and p.abs_url in rendered.text


def test_long_author_lists_are_shortened() -> None:
    authors = tuple(f"Author {i}" for i in range(34))
    _, rendered, _ = parts(papers=[paper(1, "A compiler", authors=authors)])
    assert "Author 0, Author 1, Author 2, Author 3, Author 4, … Author 33 (34 authors)" in " ".join(
        rendered.text.split()
    )


def test_operator_templates_override_the_shipped_ones(tmp_path: Path) -> None:
    (tmp_path / "subject.txt").write_text("Papers for {{ subscriber.email }}: {{ count }}")
    _, rendered, msg = parts(settings=replace(SETTINGS, templates=tmp_path))
    assert msg["Subject"] == "Papers for alice@example.org: 1"
    assert ACKNOWLEDGEMENT in rendered.html  # the others still come from the package


def test_a_broken_template_is_a_readable_error(tmp_path: Path) -> None:
    (tmp_path / "digest.txt").write_text("{{ no_such_variable }}\n")
    with pytest.raises(
        TemplateError, match=r"template digest.txt.*'no_such_variable' is undefined"
    ):
        render(
            build_digest(
                ALICE,
                matches([paper(1, "A compiler")]),
                max_per_keyword=5,
                cycle_id="c",
                created=NOW,
            ),
            replace(SETTINGS, templates=tmp_path),
        )


def test_golden_text_part() -> None:
    """The rendered text part of a fixed digest; UPDATE_GOLDEN=1 rewrites it for review."""
    ps = [
        paper(
            1,
            "Graph Neural Networks for Compilers",
            r"We bound the cost by $O(n^2)$ for graph neural networks.",
            comment="12 pages",
        ),
        paper(
            2,
            "An Optimising Compiler for $\\lambda$-calculus",
            "Compilers, quickly.",
            authors=tuple(f"Author {i}" for i in range(8)),
        ),
    ]
    _, rendered = compose(ALICE, matches(ps), SETTINGS, cycle_id="c", created=NOW)
    golden = GOLDEN / "digest.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(rendered.text, encoding="utf-8")
    assert rendered.text == golden.read_text(encoding="utf-8")


def test_templates_ship_inside_the_wheel(tmp_path: Path) -> None:
    import subprocess
    import sys
    import zipfile

    root = ROOT
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(root),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("daily_papers_digest-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = sorted(p.name for p in (root / "templates" / "email").iterdir())
    assert {"digest.html", "confirm.txt", "confirm_subject.txt"} <= set(shipped)
    for template in shipped:
        assert f"digest/templates/email/{template}" in names
