"""Relevance order inside a digest's sections (docs/delivery.md, "What a digest shows"): pure.

Matching (``digest.matching.rules``) decides *whether* a reader gets a paper; this
module decides *where* it goes in their mail. Two parts:

``Corpus`` is built once per cycle from every paper the cycle fetched or
holds in its cache: a tf-idf vector per paper over the words that matching
sees (``matching.normalize_words`` of title and abstract, so "caches" and
"cache" are one word here as there). Cost: one pass over ~900 papers.

``rank`` scores one reader's matches, cheaply: the keyword strength of each
match plus, when the reader likes papers, its similarity to them.

The formula, for a paper p matched for a reader::

    spec(k)   = max(0.1, ln((1 + N) / (1 + n(k))) / ln(1 + N))     in [0.1, 1]
                (N papers in the corpus, n(k) of the reader's matches
                contain keyword k: "model" matched by most of the day says
                little about any one paper, "fluid antenna" says a lot)
    kw(p)     = sum over the reader's keywords k that p matched of
                    spec(k) * (1.0 * [k in the title] + 0.5 * min(a_k, 3) / 3)
                + 1.0 * (number of the reader's followed authors on p)
                (a_k = occurrences of k in the abstract)
    K(p)      = 1 - exp(-kw(p))                      in [0, 1)

    v(x)      = tf-idf vector of a text x, its 40 heaviest words, unit length:
                tf = 2 * (count in title) + (count in abstract),
                weight = (1 + ln tf) * idf,  idf = ln((1 + N) / (1 + df))
                (df papers of the corpus contain the word: the cycle's
                papers are the background, so a word in all of them, "the",
                weighs nothing)
    q         = mean(v(l) for liked l) - 0.5 * mean(v(d) for disliked d),
                its 200 heaviest words, unit length
                (Rocchio's relevance feedback without a query vector: the
                keywords already chose the candidates)
    sim(p)    = cos(q, v(p))
    rel(p)    = sim(p) / max(max over the reader's matches m of sim(m), 0.15)
    score(p)  = K(p) + 1.0 * rel(p)                  (rel = 0 without likes)

Scaling by the best match's similarity makes one unit of ``rel`` mean "as
close as the closest paper today", whatever the breadth of the library; the
floor of 0.15 (a cosine that unrelated abstracts rarely reach) keeps a day
with nothing close from amplifying noise. For a specific keyword a title
hit still outweighs an abstract mention unless the latter is markedly
closer to the likes; for a broad one the likes decide, which is what a
reader drowning in "model" papers needs (benchmarks/README.md).

Order: highest score first, then newest (published, id) first — the order
digest used before ranking, so ties read as they always did. Dot products
run in each vector's sorted word order and scores are rounded to 1e-9, so
the order never depends on string hashing.

A paper the likes lifted (rel >= 0.5) whose cosine to one liked paper
reaches ``LIKE_CLOSE`` (0.15; a day's papers against a liked one: 95th
percentile about 0.10) says so: ``like: <title of that liked paper>``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from digest.matching import normalize, normalize_words
from digest.models import Liked, Match, Paper, Ranked

Vector = dict[str, float]

TITLE_HIT = 1.0
ABSTRACT_HIT = 0.5  # at three or more mentions
ABSTRACT_SATURATION = 3
AUTHOR_HIT = 1.0
SPEC_FLOOR = 0.1  # a keyword every paper matches still tells title from abstract
DISLIKE_WEIGHT = 0.5  # Rocchio's gamma against beta = 1
LIKE_WEIGHT = 1.0
SIM_FLOOR = 0.15  # a cosine to the likes that unrelated abstracts rarely reach
LIKE_CLOSE = 0.15  # cosine to one liked paper for "like: <title>" (a day's 95th percentile: ~0.10)
EXPLAIN_FROM = 0.5  # rel at which a paper looks for its closest liked paper
MAX_LIKES = 500  # a whole Zotero library is a profile, not 5,000 comparisons per paper
# Only the heaviest words of each vector are kept: they carry the topic, the
# rest are noise, and every dot product gets three times cheaper.
TERMS_PER_PAPER = 40
TERMS_PER_PROFILE = 200


@dataclass(frozen=True, slots=True)
class Corpus:
    """The cycle's papers as tf-idf vectors; build with ``build_corpus``."""

    size: int
    df: Mapping[str, int]
    vectors: Mapping[str, Vector]  # paper id -> unit tf-idf vector
    # vectors of liked papers outside the corpus, shared by readers who like
    # the same paper; invisible to callers (same input, same vector)
    _memo: dict[tuple[str | None, str], Vector] = field(default_factory=dict, repr=False)
    _texts: dict[tuple[str, int], tuple[str, str]] = field(default_factory=dict, repr=False)

    def idf(self, word: str) -> float:
        return math.log((1 + self.size) / (1 + self.df.get(word, 0)))

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

    def normalized(self, paper: Paper) -> tuple[str, str]:
        """Title and abstract as matching normalises them (kept: readers share papers)."""
        key = (paper.id, paper.version)
        text = self._texts.get(key)
        if text is None:
            text = self._texts[key] = (normalize(paper.title), normalize(paper.abstract))
        return text


@dataclass(frozen=True, slots=True)
class Profile:
    """One reader's taste: the Rocchio vector and the liked papers it came from."""

    query: Vector  # unit length; empty when the reader likes nothing
    liked: tuple[tuple[str | None, str, Vector], ...] = ()  # (id, title, vector)

    @property
    def empty(self) -> bool:
        return not self.query


NO_PROFILE = Profile(query={})


def _words(text: str) -> list[str]:
    # digits and single letters carry no topic ("2", "x" from $x$)
    return [w for w in normalize_words(text) if len(w) > 1 and not w.isdigit()]


def _tf(title: str, abstract: str) -> list[tuple[str, int]]:
    counts: Counter[str] = Counter(_words(abstract))
    for w in _words(title):
        counts[w] += 2
    return sorted(counts.items())  # sorted: the float sums below never depend on hashing


def _top(vec: Vector, n: int) -> Vector:
    """The ``n`` heaviest words, ties by word, in word order (deterministic)."""
    if len(vec) <= n:
        return vec
    keep = sorted(vec.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return dict(sorted(keep))


def _unit(vec: Vector) -> Vector:
    norm = math.sqrt(sum(x * x for x in vec.values()))
    return {w: x / norm for w, x in vec.items()} if norm > 0 else {}


def _dot(a: Vector, b: Vector) -> float:
    # iterates ``a`` in its (sorted, deterministic) order: the float sum never
    # depends on string hashing, so neither does the order of a section
    return sum([x * b[w] for w, x in a.items() if w in b])


def _weights(corpus: Corpus, tf: list[tuple[str, int]]) -> Vector:
    return _unit(_top({w: (1 + math.log(n)) * corpus.idf(w) for w, n in tf}, TERMS_PER_PAPER))


def build_corpus(papers: Iterable[Paper]) -> Corpus:
    """Index the cycle's papers once (one per id; the last one given wins)."""
    by_id = {p.id: p for p in papers}
    tfs = {pid: _tf(p.title, p.abstract) for pid, p in sorted(by_id.items())}
    df: Counter[str] = Counter(w for tf in tfs.values() for w, _ in tf)
    corpus = Corpus(size=len(tfs), df=dict(df), vectors={})
    vectors = {pid: _weights(corpus, tf) for pid, tf in tfs.items()}
    return Corpus(size=corpus.size, df=corpus.df, vectors=vectors)


def _text(liked: Liked, papers: Mapping[str, Paper]) -> tuple[str, str] | None:
    if liked.abstract or (liked.title and liked.arxiv_id not in papers):
        return liked.title, liked.abstract
    paper = papers.get(liked.arxiv_id) if liked.arxiv_id else None
    return (paper.title, paper.abstract) if paper is not None else None


def build_profile(
    corpus: Corpus,
    likes: Sequence[Liked],
    *,
    dislikes: Sequence[str] = (),
    papers: Mapping[str, Paper] | None = None,
) -> Profile:
    """A reader's Rocchio vector from what they like and the ids they dislike.

    ``papers`` (id -> Paper: the cache plus this cycle's lookups) gives the
    text of likes known only by id, and of every dislike; those not found
    are left out. At most ``MAX_LIKES`` likes count, the first ones given.
    """
    papers = papers or {}
    liked: list[tuple[str | None, str, Vector]] = []
    for item in likes:
        text = _text(item, papers)
        if text is not None and len(liked) < MAX_LIKES:
            vec = corpus.vector(*text, paper_id=item.arxiv_id)
            if vec:
                liked.append((item.arxiv_id, text[0], vec))
    disliked = [
        corpus.vector(p.title, p.abstract, paper_id=p.id)
        for p in (papers.get(i) for i in dict.fromkeys(dislikes))
        if p is not None
    ]
    query: Vector = {}
    for weight, group in ((1.0, [v for _, _, v in liked]), (-DISLIKE_WEIGHT, disliked)):
        for vec in group:
            for w, x in vec.items():
                query[w] = query.get(w, 0.0) + weight * x / len(group)
    return Profile(query=_unit(_top(query, TERMS_PER_PROFILE)), liked=tuple(liked))


def _count(text: str, needle: str) -> int:
    n, at = 0, text.find(needle)
    while at >= 0:
        n += 1
        at = text.find(needle, at + 1)
    return n


def specificity(matches: Sequence[Match], corpus_size: int) -> dict[str, float]:
    """``spec(k)`` of the module docstring for every keyword among ``matches``.

    A keyword that half the day's papers match says little about any one of
    them; one that three papers match says a lot. Counted on the reader's
    own matches, so phrases count as phrases.
    """
    df: Counter[str] = Counter(k for m in matches for k in m.keywords)
    n = max(corpus_size, len(matches), 1)
    return {
        k: max(SPEC_FLOOR, math.log((1 + n) / (1 + d)) / math.log(1 + n))
        for k, d in sorted(df.items())
    }


def keyword_strength(
    match: Match, spec: Mapping[str, float] | None = None, corpus: Corpus | None = None
) -> float:
    """``K(p)`` of the module docstring: how strongly the keywords and authors hold."""
    if corpus is not None:
        title, abstract = corpus.normalized(match.paper)
    else:
        title, abstract = normalize(match.paper.title), normalize(match.paper.abstract)
    kw = AUTHOR_HIT * len(match.authors)
    for keyword in match.keywords:
        needle = normalize(keyword)
        if needle.strip():
            hit = TITLE_HIT * (needle in title)
            hit += ABSTRACT_HIT * min(_count(abstract, needle), ABSTRACT_SATURATION) / 3
            kw += hit * (1.0 if spec is None else spec.get(keyword, 1.0))
    return 1.0 - math.exp(-kw)


def order_section(ranked: Iterable[Ranked]) -> tuple[Ranked, ...]:
    """A section's ranked matches: best score first, then newest (published, id) first."""
    newest_first = sorted(
        ranked, key=lambda r: (r.match.paper.published, r.match.paper.id), reverse=True
    )
    return tuple(sorted(newest_first, key=lambda r: -r.score))  # stable: ties stay newest first


def rank(
    matches: Sequence[Match], corpus: Corpus, profile: Profile = NO_PROFILE
) -> tuple[Ranked, ...]:
    """Every match with its score, most relevant first (see the module docstring).

    The result is a permutation of ``matches``; grouping it by section keeps
    each section in rank order. A match whose paper is not in the corpus is
    still ranked (its vector is computed here).
    """
    sims: list[float] = []
    vectors: list[Vector] = []
    if not profile.empty:
        for m in matches:
            vec = corpus.vector(m.paper.title, m.paper.abstract, paper_id=m.paper.id)
            vectors.append(vec)
            sims.append(_dot(vec, profile.query))  # 40 words looked up in 200
    scale = max([SIM_FLOOR, *sims])
    spec = specificity(matches, corpus.size)
    out = []
    for i, m in enumerate(matches):
        score = keyword_strength(m, spec, corpus)
        like = None
        if sims:
            rel = sims[i] / scale
            score += LIKE_WEIGHT * rel
            # only papers the likes lifted are worth naming a liked paper for
            # (and comparing every match with every like is the costly part)
            like = _closest(m.paper.id, vectors[i], profile) if rel >= EXPLAIN_FROM else None
        out.append(Ranked(match=m, score=round(score, 9), like=like))
    return order_section(out)


def _closest(paper_id: str, vec: Vector, profile: Profile) -> str | None:
    best, title = LIKE_CLOSE, None
    for liked_id, liked_title, liked_vec in profile.liked:
        if liked_id == paper_id:
            continue  # a liked paper that matched again is not "like" itself
        c = _dot(vec, liked_vec)
        if c >= best:
            best, title = c, liked_title
    return title
