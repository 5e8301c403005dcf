"""One reader's taste, from every signal they gave: pure.

A ``Profile`` holds four things, each from the papers the reader pointed at
(``likes:``, a ``library:`` file, "more like this" replies; when they like
nothing, the papers of authors they follow stand in):

- ``query``: the mean of those papers' word vectors, its 200 heaviest words,
  unit length (Rocchio's relevance feedback without a query vector: the
  keywords already chose the candidates);
- ``fields``: the mean of their field vectors (``Corpus.field_vector``: every
  category, primary and cross-lists, weighted by how rare it is today),
  plus the reader's configured categories, unit length;
- ``meaning``: with ``settings.semantic``, the mean of their centred
  embeddings (``ranking.semantic``), unit length;
- ``authors``: everyone who wrote one of those papers;
- ``shunned``: the field vectors of the papers the reader asked for less of,
  minus what their likes weigh in the same categories: "less like this" on
  an astronomy paper lowers astronomy, not robotics because both say
  "telescope", nor the reader's own field when the one paper was a dud.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from digest.models import CATEGORY_RE, Liked, Paper
from digest.ranking.corpus import Corpus, Vector, author_key, categories_of, top, unit
from digest.ranking.semantic import Meaning

MAX_LIKES = 500  # a whole Zotero library is a profile, not 5,000 comparisons per paper
TERMS_PER_PROFILE = 200

Kind = Literal["liked", "asked", "followed"]


@dataclass(frozen=True, slots=True)
class Source:
    """A paper the profile learned from, kept to say which one a paper is close to."""

    paper_id: str | None
    title: str
    vector: Vector
    kind: Kind = "liked"  # asked: by a "more like this" reply; followed: by an author they follow
    meaning: Meaning = ()  # its centred embedding, with settings.semantic


@dataclass(frozen=True, slots=True)
class Profile:
    """One reader's taste (see the module docstring); ``NO_PROFILE`` when they gave none."""

    query: Vector = field(default_factory=dict)
    fields: Vector = field(default_factory=dict)
    meaning: Meaning = ()
    shunned: Vector = field(default_factory=dict)
    authors: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)  # key -> (name, id)
    sources: tuple[Source, ...] = ()
    disliked: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        return not (
            self.query
            or self.fields
            or self.meaning
            or self.authors
            or self.shunned
            or self.disliked
        )


NO_PROFILE = Profile()


def _text(liked: Liked, papers: Mapping[str, Paper]) -> tuple[str, str] | None:
    if liked.abstract or (liked.title and liked.arxiv_id not in papers):
        return liked.title, liked.abstract
    paper = papers.get(liked.arxiv_id) if liked.arxiv_id else None
    return (paper.title, paper.abstract) if paper is not None else None


def _mean(vectors: Sequence[Vector]) -> Vector:
    out: Vector = {}
    for vec in vectors:
        for k, x in vec.items():
            out[k] = out.get(k, 0.0) + x / len(vectors)
    return dict(sorted(out.items()))


def build_profile(
    corpus: Corpus,
    likes: Sequence[Liked],
    *,
    dislikes: Sequence[str] = (),
    papers: Mapping[str, Paper] | None = None,
    asked: Collection[str] = (),
    followed: Sequence[Paper] = (),
    categories: Sequence[str] = (),
) -> Profile:
    """A reader's profile from what they like, asked for, follow and shun.

    ``papers`` (id -> Paper: the cache plus this cycle's lookups) gives the
    text, categories and authors of likes known only by id, and of every
    dislike; those not found are left out (a ``library:`` entry without an
    arXiv id brings its words only). ``asked``: the ids among ``likes`` that
    came from "more like this". ``followed``: papers by authors the reader
    follows, used only when no like has text. ``categories``: the reader's
    configured categories (archives such as ``cs`` say nothing about a field
    and are skipped). At most ``MAX_LIKES`` likes count, the first ones given.
    """
    papers = papers or {}
    sources: list[Source] = []
    texts: list[tuple[str | None, str, str]] = []  # (id, title, abstract) of every source
    field_vectors: list[Vector] = []
    authors: dict[str, tuple[str, str | None]] = {}
    for item in likes:
        text = _text(item, papers)
        if text is None or len(sources) >= MAX_LIKES:
            continue
        vec = corpus.vector(*text, paper_id=item.arxiv_id)
        kind: Kind = "asked" if item.arxiv_id in asked else "liked"
        if vec:
            sources.append(Source(item.arxiv_id, text[0], vec, kind))
            texts.append((item.arxiv_id, *text))
        paper = papers.get(item.arxiv_id) if item.arxiv_id else None
        if paper is not None:
            field_vectors.append(corpus.field_vector(categories_of(paper)))
            for name in paper.authors:
                authors.setdefault(author_key(name), (name, paper.id))
    if not sources:
        for paper in followed:
            vec = corpus.vector(paper.title, paper.abstract, paper_id=paper.id)
            sources.append(Source(paper.id, paper.title, vec, "followed"))
            texts.append((paper.id, paper.title, paper.abstract))
            field_vectors.append(corpus.field_vector(categories_of(paper)))
    field_vectors.extend(
        corpus.field_vector((c,)) for c in categories if "." in c and CATEGORY_RE.fullmatch(c)
    )
    fields = unit(_mean([v for v in field_vectors if v]))
    shunned_papers = [p for p in (papers.get(i) for i in dict.fromkeys(dislikes)) if p is not None]
    against = _mean([corpus.field_vector(categories_of(p)) for p in shunned_papers])
    shunned = {c: x - fields.get(c, 0.0) for c, x in against.items() if x > fields.get(c, 0.0)}
    query = unit(top(_mean([s.vector for s in sources]), TERMS_PER_PROFILE))
    meaning: Meaning = ()
    if corpus.meanings is not None:
        meaning, each = corpus.meanings.learn(texts)
        sources = [replace(s, meaning=m) for s, m in zip(sources, each, strict=True)]
    return Profile(
        query=query,
        fields=fields,
        meaning=meaning,
        shunned=shunned,
        authors={k: v for k, v in sorted(authors.items()) if k},
        sources=tuple(sources),
        disliked=frozenset(dislikes),
    )
