"""The Daily Papers page: one Markdown table per keyword, from the paper cache.

It keeps the layout readers of the old "Daily Papers" pages know, but every
row is checked locally against its keyword (the old pages repeated the same
unrelated papers under every keyword). Rendering is pure; writing is atomic
(temporary file, fsync, rename), so a reader never sees half a page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from digest import atomic, latex
from digest.errors import DigestError
from digest.matching import PaperIndex, unique_phrases
from digest.models import LIST_NAME, Paper, Subscriber, newest_first

ROWS_PER_KEYWORD = 100
COMMENT_INLINE = 80  # longer comments are collapsed like abstracts

INTRO = (
    "New arXiv papers for the keywords our readers follow, fetched daily from the arXiv API. "
    "Each section is a keyword and lists at most the 100 newest papers (by submission date) "
    "whose title or abstract contains it. Thank you to arXiv for use of its open access "
    "interoperability."
)


def keywords_in_order(subscribers: Iterable[Subscriber]) -> tuple[str, ...]:
    """Every keyword anyone follows, first-seen order, spelling variants once."""
    return unique_phrases(k for sub in subscribers for k in sub.keywords)


def select(
    keywords: Sequence[str], papers: Iterable[Paper], index: PaperIndex | None = None
) -> dict[str, list[Paper]]:
    """Per keyword, the newest ``ROWS_PER_KEYWORD`` papers that truly match it.

    ``index`` is the cycle's, over the same papers: each paper is then
    normalised once per cycle, not once per keyword.
    """
    newest = sorted(papers, key=newest_first, reverse=True)
    if index is None or any(index.paper(p.id) != p for p in newest):
        index = PaperIndex(newest)
    return {k: [p for p in newest if p.id in index.phrase(k)][:ROWS_PER_KEYWORD] for k in keywords}


def kept_ids(selection: Mapping[str, Sequence[Paper]]) -> set[str]:
    """The papers a page shows: pruning must keep them, whatever their age."""
    return {p.id for rows in selection.values() for p in rows}


def _cell(text: str) -> str:
    """Text for inside a table cell: one line, no raw HTML, no column breaks."""
    text = " ".join(text.split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|")


def _link_text(text: str) -> str:
    # Markdown link text: brackets would end it, emphasis marks would restyle it
    out = _cell(text)
    for ch in "[]*_`":
        out = out.replace(ch, "\\" + ch)
    return out


def _collapsed(text: str) -> str:
    return f"<details><summary>Show</summary><p>{_cell(text)}</p></details>"


def _row(p: Paper) -> str:
    # the id is an arXiv identifier (the feed admits no other); quoted anyway,
    # so that nothing in it can end the link or become markup
    url = f"https://arxiv.org/abs/{quote(p.versioned_id, safe='/')}"
    title = f"**[{_link_text(latex.text(p.title))}]({url})**"
    comment = latex.text(p.comment or "")
    comment_cell = _collapsed(comment) if len(comment) > COMMENT_INLINE else _cell(comment)
    abstract = _collapsed(latex.text(p.abstract))
    return f"| {title} | {p.published:%Y-%m-%d} | {abstract} | {comment_cell} |"


def render(keywords: Sequence[str], papers: Iterable[Paper], today: datetime) -> str:
    """The whole page."""
    return render_selection(select(keywords, papers), today)


def render_selection(selection: Mapping[str, Sequence[Paper]], today: datetime) -> str:
    """The whole page, from ``select``'s rows."""
    lines = [f"# {LIST_NAME}", "", INTRO, "", f"Last update: {today:%Y-%m-%d}", ""]
    for keyword, rows in selection.items():
        lines += [
            f"## {_cell(keyword)}",
            "",
            "| **Title** | **Date** | **Abstract** | **Comment** |",
            "| --- | --- | --- | --- |",
            *(_row(p) for p in rows),
            "",
        ]
    return "\n".join(lines)


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step; raises ``DigestError`` on failure."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_atomic(path, text, mode=0o644)  # a page is meant to be read
    except OSError as exc:
        raise DigestError(f"cannot write the Daily Papers page {path}: {exc}") from exc
