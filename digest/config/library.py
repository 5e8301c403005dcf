"""What a reader likes: arXiv ids from ``likes:``, entries from a ``library:`` file.

The only module that imports bibtexparser. A library is a BibTeX file or a
CSL-JSON file, as Zotero, JabRef or Mendeley export them. An entry counts
when it names an arXiv paper (``eprint``, an arXiv ``url``, arXiv's DOI
``10.48550/arXiv.<id>``, or Zotero's ``note = {arXiv:<id> [cs]}``) or brings
a title; its title and abstract are used directly when present, so only
bare ids need a lookup (``ids_to_look_up``: one ``id_list`` request per
cycle at most).

Problems are ``ConfigError``s naming the line or the item, never a crash:
an operator who points ``library:`` at the wrong file hears which file and
why at start-up (exit 78), not in the middle of a cycle.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from bibtexparser.entrypoint import parse_string
from bibtexparser.model import Entry, ParsingFailedBlock

from digest.arxiv import id_batches
from digest.errors import ConfigError
from digest.latex import to_text
from digest.models import ARXIV_ID, Liked, Subscriber

# written as people write them: in any case (normalised by _versionless)
_ID = rf"(?P<id>{ARXIV_ID})(?:v\d+)?"
_BARE = re.compile(rf"(?:arxiv:)?{_ID}", re.IGNORECASE)
# where an id sits inside a longer text: an abs/pdf URL, arXiv's DOI, "arXiv:<id>"
_INSIDE = re.compile(
    rf"(?:arxiv\.org/(?:abs|pdf|html)/|10\.48550/arxiv\.|arxiv:\s*){_ID}(?![\d.])",
    re.IGNORECASE,
)


def parse_arxiv_id(text: str) -> str | None:
    """The versionless id that ``text`` is, or None.

    Accepts ``2101.00001``, ``2101.00001v2``, ``arXiv:2101.00001``,
    ``hep-th/9901001``, an abs/pdf URL and arXiv's DOI.
    """
    s = text.strip()
    m = _BARE.fullmatch(s) or _INSIDE.search(s)
    return _versionless(m.group("id")) if m else None


def _versionless(ident: str) -> str:
    # old-style archives are lower case, the subject class upper case (math.AG/0601001)
    archive, slash, number = ident.partition("/")
    if not slash:
        return ident
    name, dot, subject = archive.partition(".")
    return f"{name.lower()}{dot}{subject.upper()}/{number}"


def find_arxiv_id(*texts: str | None) -> str | None:
    """The first arXiv id found inside any of ``texts`` (URL, DOI, note), or None."""
    for text in texts:
        if text:
            m = _INSIDE.search(text)
            if m:
                return _versionless(m.group("id"))
    return None


# --------------------------------------------------------------------------
# Reading a library file


def read_library(path: Path) -> tuple[Liked, ...]:
    """The liked papers in a BibTeX or CSL-JSON file; ``ConfigError`` naming the problem."""
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(source, [f"cannot read the file: {exc.strerror or exc}"]) from exc
    try:
        text = raw.decode("utf-8-sig")  # Windows exports start with a BOM
    except UnicodeDecodeError as exc:
        raise ConfigError(
            source, [f"cannot read the file: not UTF-8 text (byte {exc.start})"]
        ) from exc
    if not text.strip():
        return ()
    if text.lstrip()[0] in "[{":
        return _read_csl_json(text, source)
    return _read_bibtex(text, source)


def _read_bibtex(text: str, source: str) -> tuple[Liked, ...]:
    library = parse_string(text)
    problems = [_failed(block) for block in library.failed_blocks]
    if problems:
        raise ConfigError(source, problems)
    if not library.entries:
        raise ConfigError(
            source, ["no BibTeX entries (@article{...}) or CSL-JSON items found in the file"]
        )
    liked = (_from_bibtex(e) for e in library.entries)
    return tuple(x for x in liked if x is not None)


def _failed(block: ParsingFailedBlock) -> str:
    raw = (block.raw or "").strip()
    first = raw.splitlines()[0][:60] if raw else ""
    line = (block.start_line or 0) + 1
    said = str(block.error or "").strip().splitlines()
    why = said[-1].strip() if said else "syntax error"
    return f"line {line}: cannot parse the entry starting {first!r}: {why}"


def _from_bibtex(entry: Entry) -> Liked | None:
    fields = {f.key.lower(): str(f.value) for f in entry.fields}
    arxiv_id = None
    prefix = (fields.get("archiveprefix") or fields.get("eprinttype") or "arxiv").lower()
    if "eprint" in fields and prefix == "arxiv":
        arxiv_id = parse_arxiv_id(fields["eprint"])
    arxiv_id = arxiv_id or find_arxiv_id(
        fields.get("doi"), fields.get("url"), fields.get("note"), fields.get("journal")
    )
    return _liked(arxiv_id, fields.get("title", ""), fields.get("abstract", ""))


def _liked(arxiv_id: str | None, title: str, abstract: str) -> Liked | None:
    # BibTeX protects capitals with braces and writes accents as LaTeX:
    # make them the plain text a reader sees in "like: <title>".
    title, abstract = to_text(title).strip(), to_text(abstract).strip()
    if arxiv_id is None and not title:
        return None  # nothing to compare with: neither an id to look up nor words
    return Liked(arxiv_id=arxiv_id, title=" ".join(title.split()), abstract=abstract)


def _read_csl_json(text: str, source: str) -> tuple[Liked, ...]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            source, [f"line {exc.lineno}, column {exc.colno}: not valid JSON: {exc.msg}"]
        ) from exc
    if not isinstance(items, list):
        raise ConfigError(source, ["a CSL-JSON library is a list of items: [ {...}, ... ]"])
    out: list[Liked] = []
    problems: list[str] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(f"item [{i}]: not a CSL-JSON item (a {{...}} object)")
            continue
        liked = _from_csl(item)
        if liked is not None:
            out.append(liked)
    if problems:
        raise ConfigError(source, problems)
    return tuple(out)


def _from_csl(item: Mapping[str, Any]) -> Liked | None:
    def field(name: str) -> str:
        value = item.get(name)
        return value if isinstance(value, str) else ""

    arxiv_id = find_arxiv_id(field("DOI"), field("URL"), field("number"), field("note"))
    return _liked(arxiv_id, field("title"), field("abstract"))


# --------------------------------------------------------------------------
# Combining and looking up


def merge_likes(ids: Iterable[str], entries: Iterable[Liked]) -> tuple[Liked, ...]:
    """``likes:`` ids and library entries as one tuple, one entry per arXiv paper.

    An entry that brings text wins over a bare id for the same paper.
    """
    by_id: dict[str, Liked] = {}
    unnamed: list[Liked] = []
    for liked in (*(Liked(arxiv_id=i) for i in ids), *entries):
        if liked.arxiv_id is None:
            unnamed.append(liked)
        elif liked.arxiv_id not in by_id or (liked.abstract and not by_id[liked.arxiv_id].abstract):
            by_id[liked.arxiv_id] = liked
    return (*by_id.values(), *unnamed)


def ids_to_look_up(
    subscribers: Iterable[Subscriber],
    cached: Collection[str],
    *,
    api_url: str,
    page_size: int = 200,
    not_found: Collection[str] = (),
) -> tuple[str, ...]:
    """The liked ids to ask arXiv for this cycle: at most one ``id_list`` request's worth.

    A liked paper needs a lookup when the reader gave only its id (no
    abstract) and the paper cache does not hold it. One request means one
    URL (``query.id_batches``) and one page (``page_size``, the
    ``max_results`` that ``ArxivClient.fetch_ids`` asks for). ``not_found``
    are ids arXiv already answered without an entry; they are not asked
    again, so they cannot hold the front of the queue for ever. The rest
    wait for the next cycle (arXiv asks for one request every three
    seconds, in its API terms of use); meanwhile the likes found so far rank.
    """
    wanted = {
        liked.arxiv_id
        for sub in subscribers
        for liked in sub.likes
        if liked.arxiv_id is not None and not liked.abstract
    }
    todo = sorted(i for i in wanted if i not in cached and i not in not_found)
    if not todo:
        return ()
    return tuple(id_batches(todo[:page_size], api_url=api_url)[0].split(","))
