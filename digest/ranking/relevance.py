"""Relevance order inside a digest's sections (docs/delivery.md, "What a digest shows"): pure.

Matching (``digest.matching.rules``) decides *whether* a reader gets a paper; this
module decides *where* it goes in their mail, and says why a paper was lifted.
The corpus (``ranking.corpus``) is built once per cycle, each reader's profile
(``ranking.profile``) from their likes, and ``rank`` scores their matches.

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

    text(p)   = cos(query, v(p)) / max(max over the reader's matches m of
                cos(query, v(m)), 0.15)              in [0, 1]
    field(p)  = cos(fields, f(p))                    in [0, 1]
    mean(p)   = max(0, close(p)) / max(max over the reader's matches m of
                close(m), 0.15)                      in [0, 1]
                (only with settings.semantic: ``ranking.semantic``; else 0)
    author(p) = 1 if someone who wrote a paper the reader likes wrote p and
                field(p) >= 0.5, else 0 (the same name in another field is
                likely someone else: "Yang Li")
    shun(p)   = shunned . f(p)  + 1 if the reader asked for less of p itself

    score(p)  = K(p) + 1.0 * text(p) + 1.0 * mean(p) + 1.5 * field(p)
                + 0.5 * author(p) - 1.5 * shun(p)

(``v``, ``f``: ``ranking.corpus``; ``query``, ``fields``, ``shunned``:
``ranking.profile``). The field outweighs the words: a robotics paper is a
robotics reader's whether or not it says "grasp", while "Path Loss
Prediction Using Deep Learning" shares their words but not their field.
Within a field, the words decide, and with ``settings.semantic`` their
meaning: tf-idf cannot tell a multi-agent pipeline for video editing from
one about agents (both say "agent", "workflow", "orchestration"); a
meaning-reading model can. On the judged sets (tests/fixtures/judged) that
took the first set's P@10 from 0.775 to 0.850 and the held-out second set's
from 0.850 to 0.900 (benchmarks/README.md). Scaling ``text`` by the best match makes
one unit mean "as close as the closest paper today"; its floor of 0.15 (a
cosine unrelated abstracts rarely reach) keeps a day with nothing close
from amplifying noise. A reader who gave nothing to learn from (no likes,
followed authors or categories) gets ``K``, the fields taking turns at the
top (``_spread``). benchmarks/README.md measures each against the calendar
and the previous ranker.

Order: highest score first, then newest (published, id) first — the order
digest used before ranking, so ties read as they always did. Scores are
rounded to 1e-9, so the order never depends on string hashing.

Why: a paper whose profile terms lift it by 0.5 or more says so, in one
line, the most specific reason first: ``you asked for more like <title>``
or ``like: <title>`` when its words are close to one such paper (cosine
0.1 or more: a day's papers against one liked paper reach 0.07 at the
99th percentile) or, with ``settings.semantic``, its meaning is (centred
closeness 0.3 or more; the 99th percentile is 0.29), ``by <name>`` for
an author of a liked paper (as above), else ``your field: <category
name>`` when field(p) >= 0.5, naming the paper's category that weighs
most in the reader's fields.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from digest.matching import normalize
from digest.models import Match, Ranked, newest_first
from digest.ranking.corpus import Corpus, Vector, author_key, categories_of, dot
from digest.ranking.fields import field_name
from digest.ranking.profile import NO_PROFILE, Profile

TITLE_HIT = 1.0
ABSTRACT_HIT = 0.5  # at three or more mentions
ABSTRACT_SATURATION = 3
AUTHOR_HIT = 1.0
SPEC_FLOOR = 0.1  # a keyword every paper matches still tells title from abstract
TEXT_WEIGHT = 1.0
MEANING_WEIGHT = 1.0  # as much as the words: the judged sets hold at 0.5 to 1.5
FIELD_WEIGHT = 1.5
COAUTHOR_WEIGHT = 0.5
SHUN_WEIGHT = 1.5
MEANING_CLOSE = 0.3  # centred closeness to one liked paper for "like: <title>" (99th pct: 0.29)
SIM_FLOOR = 0.15  # a cosine to the likes that unrelated abstracts rarely reach
EXPLAIN_FROM = 0.5  # lift from the profile at which a paper says why
LIKE_CLOSE = 0.1  # cosine to one liked paper for "like: <title>" (a day's 99th percentile: 0.07)
FIELD_CLOSE = 0.5  # field(p) for "your field: …" and for a shared author's name to count
FIELD_REASON = "your field: "  # the reason that names no paper the reader likes
SPREAD = 0.05  # without a profile: a paper's strength less this per paper of its field above it


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
    """Every match with its score and reason, most relevant first (see the module docstring).

    The result is a permutation of ``matches``; grouping it by section keeps
    each section in rank order. A match whose paper is not in the corpus is
    still ranked (its vectors are computed here).
    """
    spec = specificity(matches, corpus.size)
    if profile.empty:
        return _spread(matches, [keyword_strength(m, spec, corpus) for m in matches], spec)
    vectors = [corpus.vector(m.paper.title, m.paper.abstract, paper_id=m.paper.id) for m in matches]
    sims = [dot(v, profile.query) for v in vectors] if profile.query else [0.0] * len(matches)
    scale = max([SIM_FLOOR, *sims])
    close = [0.0] * len(matches)
    # each match's closeness in meaning to each liked paper, for the reason line
    to_each: list[list[float]] = [[] for _ in matches]
    if corpus.meanings is not None and profile.meaning:
        rows = corpus.meanings.rows([m.paper for m in matches])
        close = corpus.meanings.closeness(profile.meaning, rows)
        if all(s.meaning for s in profile.sources):
            to_each = corpus.meanings.to_each([s.meaning for s in profile.sources], rows)
    close_scale = max([SIM_FLOOR, *close])
    out = []
    for m, vec, sim, near, meant in zip(matches, vectors, sims, close, to_each, strict=True):
        fields = corpus.field_vector(categories_of(m.paper))
        field = dot(fields, profile.fields)
        # the same name in another field is likely someone else ("Yang Li")
        coauthor = _coauthor(m, profile) if field >= FIELD_CLOSE else None
        lift = (
            TEXT_WEIGHT * sim / scale
            + MEANING_WEIGHT * max(0.0, near) / close_scale
            + FIELD_WEIGHT * field
            + COAUTHOR_WEIGHT * (coauthor is not None)
        )
        shun = dot(fields, profile.shunned) + (m.paper.id in profile.disliked)
        score = keyword_strength(m, spec, corpus) + lift - SHUN_WEIGHT * shun
        # only lifted papers are worth a reason (and comparing every match
        # with every like is the costly part)
        why = (
            _reason(m, vec, fields, field, coauthor, profile, meant)
            if lift >= EXPLAIN_FROM
            else None
        )
        out.append(Ranked(match=m, score=round(score, 9), reason=why))
    return order_section(out)


def _coauthor(m: Match, profile: Profile) -> str | None:
    """Someone who wrote one of the reader's liked papers and wrote this one too."""
    for name in m.paper.authors:
        known = profile.authors.get(author_key(name))
        if known is not None and known[1] != m.paper.id:
            return name
    return None


def _reason(
    m: Match,
    vec: Vector,
    fields: Vector,
    field: float,
    coauthor: str | None,
    profile: Profile,
    meant: Sequence[float] = (),
) -> str | None:
    """The line under a lifted paper: the most specific true reason (module docstring).

    ``meant``: the paper's closeness in meaning to each of ``profile.sources``
    (empty without ``settings.semantic``). A source is close by its words or
    by its meaning, each measured against its own threshold; of a kind, the
    closest by that measure is named.
    """
    close: dict[str, tuple[float, str]] = {}  # kind -> (closeness, title) of the closest source
    for i, source in enumerate(profile.sources):
        if source.paper_id == m.paper.id or source.kind == "followed":
            continue  # a liked paper that matched again is not "like" itself
        c = dot(vec, source.vector) / LIKE_CLOSE
        if i < len(meant):
            c = max(c, meant[i] / MEANING_CLOSE)
        if c >= 1.0 and c > close.get(source.kind, (0.0, ""))[0]:
            close[source.kind] = (c, source.title)
    if "asked" in close:
        return f"you asked for more like {close['asked'][1]}"
    if "liked" in close:
        return f"like: {close['liked'][1]}"
    if coauthor is not None:
        return f"by {coauthor}"
    if field >= FIELD_CLOSE:
        _weight, category = max(
            (fields[c] * w, c) for c, w in profile.fields.items() if c in fields
        )
        return f"{FIELD_REASON}{field_name(category)}"
    return None


def _spread(
    matches: Sequence[Match], strengths: Sequence[float], spec: Mapping[str, float]
) -> tuple[Ranked, ...]:
    """Keyword strength, each field's papers taking turns at the top: for a reader without taste.

    A broad keyword ("model") leaves the reader's field open; the calendar
    shows the day's fields in proportion, keyword strength alone favours the
    big ones (whose titles say "model"). Greedy: the next paper is the one
    whose strength, less ``step`` for every paper of its primary category
    already placed, is highest (ties: newest); that value is its score.
    ``step`` is ``SPREAD`` times one minus the mean ``spec`` of the matches:
    near ``SPREAD`` for a broad keyword, near 0 for a specific one. Each
    pick's value is at most the one before (a count only grows), so sorting
    by score gives this order back; a paper the reader's field lands on
    early can be answered "more like this".
    """
    # as much as the keywords leave open: "model" says nothing of a field,
    # "metamorphic testing" says most of it
    said = [max((spec.get(k, 1.0) for k in m.keywords), default=1.0) for m in matches]
    step = SPREAD * (1.0 - sum(said) / max(len(said), 1))
    # newest first is the tie-break, as in order_section: a paper's place in
    # that order stands in for its (published, id)
    newest = sorted(range(len(matches)), key=lambda i: newest_first(matches[i].paper), reverse=True)
    recency = {i: r for r, i in enumerate(newest)}
    queues: dict[str, list[int]] = {}
    for i in sorted(newest, key=lambda i: -strengths[i]):  # stable: newest first among equals
        queues.setdefault(matches[i].paper.primary_category, []).append(i)
    # one heap entry per field: its best unplaced paper, valued at its strength less
    # step per paper of that field placed so far; only the field picked changes
    heap = [(-round(strengths[q[0]], 9), recency[q[0]], cat, 0) for cat, q in queues.items()]
    heapq.heapify(heap)
    out: list[Ranked] = []
    while heap:
        value, _, cat, placed = heapq.heappop(heap)
        out.append(Ranked(matches[queues[cat][placed]], -value))
        if placed + 1 < len(queues[cat]):
            nxt = queues[cat][placed + 1]
            worth = round(strengths[nxt] - step * (placed + 1), 9)
            heapq.heappush(heap, (-worth, recency[nxt], cat, placed + 1))
    return order_section(out)
