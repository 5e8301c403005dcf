"""The cycle's papers as ranking reads them: word vectors and field vectors, built once.

``Corpus`` is built once per cycle from the papers of the fetch window (the
background). It holds:

- a tf-idf vector per paper over the words that matching sees
  (``matching.normalize_words`` of title and abstract, so "caches" and
  "cache" are one word here as there)::

      v(x)  = its 40 heaviest words, unit length:
              tf = 2 * (count in title) + (count in abstract),
              weight = (1 + ln tf) * idf,  idf = ln((1 + N) / (1 + df))

  (N papers in the corpus, df of them contain the word: a word in all of
  them, "the", weighs nothing);

- how many papers carry each arXiv category, so a paper's categories become
  a field vector weighted by how rare each is that day::

      f(p)  = unit vector of  c -> pos(c) * ln((1 + N) / (1 + n(c)))
              pos = 1 for the primary category, 0.5 for a cross-list

  (on a day of 300 cs.CV papers and 10 cs.RO ones, a cs.CV paper
  cross-listed to cs.RO reads as robotics first: the rare category is the
  one that tells fields apart).

With ``settings.semantic``, the corpus also holds the papers' embeddings
(``ranking.semantic``: the optional model, loaded by the caller and passed
in as ``embed``).

Cost: one pass over ~1,000 papers. Dot products run in each vector's sorted
key order, so no float sum depends on string hashing.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from digest.matching import normalize, normalize_words
from digest.models import Paper
from digest.ranking.semantic import Embed, Meanings, build_meanings

Vector = dict[str, float]

# Only the heaviest words of each vector are kept: they carry the topic, the
# rest are noise, and every dot product gets three times cheaper.
TERMS_PER_PAPER = 40
CROSS_LIST = 0.5  # a cross-list says less about a paper's field than its primary category


@dataclass(frozen=True, slots=True)
class Corpus:
    """The cycle's papers as vectors; build with ``build_corpus``."""

    size: int
    df: Mapping[str, int]
    vectors: Mapping[str, Vector]  # paper id -> unit tf-idf vector
    fields: Mapping[str, int] = field(default_factory=dict)  # category -> papers carrying it
    meanings: Meanings | None = None  # the papers' embeddings, with settings.semantic
    # what readers share, worked out once (same input, same value): vectors of
    # liked papers outside the corpus, field vectors by category list, texts
    _memo: dict[tuple[str | None, str], Vector] = field(default_factory=dict, repr=False)
    _field_memo: dict[tuple[str, ...], Vector] = field(default_factory=dict, repr=False)
    _texts: dict[tuple[str, int], tuple[str, str]] = field(default_factory=dict, repr=False)

    def idf(self, word: str) -> float:
        return math.log((1 + self.size) / (1 + self.df.get(word, 0)))

    def rarity(self, category: str) -> float:
        """How rare a category is today: its idf over the corpus (0 for an empty corpus)."""
        return math.log((1 + self.size) / (1 + self.fields.get(category, 0)))

    def vector(self, title: str, abstract: str, paper_id: str | None = None) -> Vector:
        """The unit tf-idf vector of a text against this corpus's background."""
        if paper_id is not None and paper_id in self.vectors:
            return self.vectors[paper_id]
        key = (paper_id, title if paper_id is not None else title + "\x00" + abstract)
        vec = self._memo.get(key)
        if vec is None:
            vec = _weights(self, _tf(title, abstract))
            self._memo[key] = vec
        return vec

    def field_vector(self, categories: tuple[str, ...]) -> Vector:
        """``f`` of the module docstring; ``categories`` primary first, as arXiv lists them."""
        vec = self._field_memo.get(categories)
        if vec is None:
            weights: Vector = {}
            for i, c in enumerate(categories):
                weights[c] = max(
                    weights.get(c, 0.0), (1.0 if i == 0 else CROSS_LIST) * self.rarity(c)
                )
            kept = {c: w for c, w in sorted(weights.items()) if w > 0}  # not: in every paper
            vec = self._field_memo[categories] = unit(kept)
        return vec

    def normalized(self, paper: Paper) -> tuple[str, str]:
        """Title and abstract as matching normalises them (kept: readers share papers)."""
        key = (paper.id, paper.version)
        text = self._texts.get(key)
        if text is None:
            text = self._texts[key] = (normalize(paper.title), normalize(paper.abstract))
        return text


def categories_of(paper: Paper) -> tuple[str, ...]:
    """The paper's categories, primary first (arXiv lists it first; the feed says which)."""
    rest = tuple(c for c in paper.categories if c != paper.primary_category)
    return (paper.primary_category, *rest) if paper.primary_category else rest


def author_key(name: str) -> str:
    """An author as a key for "wrote a paper you like": the name as matching normalises words.

    Exact, not ``by_author``'s "same surname, compatible initials": two papers'
    author lists both come from arXiv, spelt out the same way, and a looser
    rule would take every "Y. Wang" for every "Yu Wang".
    """
    return " ".join(normalize_words(name))


def _words(text: str) -> list[str]:
    # digits and single letters carry no topic ("2", "x" from $x$)
    return [w for w in normalize_words(text) if len(w) > 1 and not w.isdigit()]


def _tf(title: str, abstract: str) -> list[tuple[str, int]]:
    counts: Counter[str] = Counter(_words(abstract))
    for w in _words(title):
        counts[w] += 2
    return sorted(counts.items())  # sorted: the float sums below never depend on hashing


def top(vec: Vector, n: int) -> Vector:
    """The ``n`` heaviest keys, ties by key, in key order (deterministic)."""
    if len(vec) <= n:
        return vec
    keep = sorted(vec.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return dict(sorted(keep))


def unit(vec: Vector) -> Vector:
    norm = math.sqrt(sum(x * x for x in vec.values()))
    return {w: x / norm for w, x in vec.items()} if norm > 0 else {}


def dot(a: Vector, b: Vector) -> float:
    # the shared keys found at C speed, summed in sorted order (every vector
    # here is kept in key order): the float sum never depends on string
    # hashing, so neither does the order of a section
    return sum([a[w] * b[w] for w in sorted(a.keys() & b.keys())])


def _weights(corpus: Corpus, tf: list[tuple[str, int]]) -> Vector:
    return unit(top({w: (1 + math.log(n)) * corpus.idf(w) for w, n in tf}, TERMS_PER_PAPER))


def build_corpus(papers: Iterable[Paper], embed: Embed | None = None) -> Corpus:
    """Index the cycle's papers once (one per id; the last one given wins).

    ``embed``: the semantic model (``semantic.load()``), when the reader's
    order should read meaning too.
    """
    by_id = dict(sorted({p.id: p for p in papers}.items()))
    tfs = {pid: _tf(p.title, p.abstract) for pid, p in by_id.items()}
    df: Counter[str] = Counter(w for tf in tfs.values() for w, _ in tf)
    fields: Counter[str] = Counter(c for p in by_id.values() for c in set(categories_of(p)))
    corpus = Corpus(size=len(tfs), df=dict(df), vectors={})
    vectors = {pid: _weights(corpus, tf) for pid, tf in tfs.items()}
    return Corpus(
        size=corpus.size,
        df=corpus.df,
        vectors=vectors,
        fields=dict(sorted(fields.items())),
        meanings=build_meanings(list(by_id.values()), embed) if embed is not None else None,
    )
