"""The shipped mail templates as a reader sees them: subject, links, dark mode, index.

Dark mode is checked without a browser: the rules of the template's
``prefers-color-scheme: dark`` query are inlined over the finished HTML with
css-inline (the project's own inliner), which resolves ``!important`` against
the inline styles the way a client applying the query would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import css_inline

from digest import ranking as rank
from digest.compose.render import compose
from digest.matching.rules import match_all
from digest.models import Paper, Settings, SmtpSettings, Subscriber

NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
SETTINGS = Settings(smtp=SmtpSettings(sender="Daily Papers <papers@digest.test>"))
KEYWORDS = ("compiler", "graph", "lattice", "proton", "hypertrees", "electron")
READER = Subscriber(email="reader@example.org", keywords=KEYWORDS)
LONG = "We study the compiler. " + "A sentence that goes on about the results. " * 40


def paper(i: int, title: str, abstract: str) -> Paper:
    t = NOW - timedelta(hours=i)
    return Paper(
        id=f"2611.{i:05d}",
        version=1,
        title=title,
        abstract=abstract,
        authors=("Ada Lovelace",),
        categories=("cs.PL", "cs.LG"),
        primary_category="cs.PL",
        published=t,
        updated=t,
    )


PAPERS = [
    paper(1, "A compiler", LONG),
    paper(2, "A graph", "Short."),
    paper(3, "A lattice", "Short."),
    paper(4, "A proton", "Short."),
    paper(5, "An electron", "Short."),
]


def rendered(papers: list[Paper] = PAPERS, sub: Subscriber = READER):
    ranked = rank.rank(match_all(papers, sub), rank.build_corpus(papers))
    return compose(sub, ranked, SETTINGS, cycle_id="c", created=NOW)[1]


@dataclass(frozen=True)
class Element:
    tag: str
    attrs: dict[str, str]
    text: str  # the first text inside it


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[Element] = []
        self._open: list[int] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append(Element(tag, {k: v or "" for k, v in attrs}, ""))
        if tag in ("a", "span", "div"):
            self._open.append(len(self.found) - 1)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("a", "span", "div") and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        if self._open and data.strip():
            i = self._open[-1]
            el = self.found[i]
            if not el.text:
                self.found[i] = Element(el.tag, el.attrs, data.strip())


def elements(html: str) -> list[Element]:
    parser = _Elements()
    parser.feed(html)
    return parser.found


def dark(html: str) -> str:
    """The HTML as a client in dark mode styles it: the media query's rules applied."""
    query = re.search(r"@media \(prefers-color-scheme: dark\) \{(.*?)\}\s*</style>", html, re.S)
    assert query, "no dark-mode media query"
    return css_inline.inline(html, extra_css=query.group(1), load_remote_stylesheets=False)


def declared(style: str, prop: str) -> str | None:
    """The value that wins for ``prop`` in an inline style (!important first, then last)."""
    values = re.findall(rf"(?:^|;)\s*{prop}\s*:\s*([^;]+)", style)
    important = [v for v in values if "!important" in v]
    chosen = (important or values or [None])[-1]
    return chosen.replace("!important", "").strip() if chosen else None


def luminance(hex_colour: str) -> float:
    r, g, b = (int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def border_colours(style: str) -> list[str]:
    """The colour of each border side an inline style draws."""
    out = []
    for side in ("border", "border-bottom"):
        shorthand = declared(style, side)
        if shorthand is None:
            continue
        own = declared(style, f"{side}-color") or declared(style, "border-color")
        colour = re.search(r"#[0-9a-fA-F]{6}", own or shorthand)
        assert colour, style
        out.append(colour.group(0))
    return out


def link_colours(html: str) -> dict[str, str | None]:
    return {
        e.text: declared(e.attrs.get("style", ""), "color") for e in elements(html) if e.tag == "a"
    }


def test_subject_counts_the_keywords_beyond_three_as_keywords() -> None:
    subject = rendered().subject
    assert subject == "5 new arXiv papers: compiler, graph, lattice and 2 more keywords"


def test_read_more_is_coloured_like_the_other_links_in_light_mode() -> None:
    colours = link_colours(rendered().html)
    assert colours["read more"] is not None
    assert colours["read more"] == colours["Abstract"] == colours["PDF"]


def test_read_more_is_coloured_like_the_other_links_in_dark_mode() -> None:
    colours = link_colours(dark(rendered().html))
    assert colours["read more"] is not None
    assert colours["read more"] == colours["Abstract"] == colours["PDF"]
    assert luminance(colours["read more"]) > 0.4  # light on a dark background


def test_separators_and_tag_borders_are_dark_in_dark_mode() -> None:
    html = dark(rendered().html)
    bordered = {
        e.attrs.get("class", ""): border_colours(e.attrs.get("style", ""))
        for e in elements(html)
        if "border" in e.attrs.get("style", "")
    }
    assert {"paper", "tag"} <= set(bordered)
    too_light = {cls: cs for cls, cs in bordered.items() if any(luminance(c) > 0.3 for c in cs)}
    assert too_light == {}


def test_the_keyword_index_has_no_fragment_links() -> None:
    html = rendered().html
    found = elements(html)
    assert [e.attrs["href"] for e in found if e.attrs.get("href", "").startswith("#")] == []
    assert [e.attrs["id"] for e in found if "id" in e.attrs] == []
    index = re.search(r'<p class="index"[^>]*>(.*?)</p>', html, re.S)
    assert index and "Top of today&nbsp;(3)" in index.group(1)
    assert "proton&nbsp;(1)" in index.group(1)
