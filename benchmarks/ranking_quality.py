"""Ranking quality and cost of digest.ranking on real arXiv listing days, before and after.

Quality is P@10: the share of a reader's first 10 papers that are of their
field (the field's category among the paper's categories, primary or
cross-list). Each order is printed beside the calendar (newest first:
digest's order before ranking) and the previous ranker, in the same run:

- overlapping fields: a reader follows one broad keyword (50+ matches) and
  likes 8 papers of one field, drawn at random from the two *other* days
  (3 draws per pair), for every keyword x field pair with 3+ field papers
  among the matches and a base rate of at most 0.4, on each of the three
  days; also the same readers with no likes (keyword strength alone);
- discovery: a whole day ranked by the likes alone (no keyword);
- followed authors, no likes: the reader follows the authors of two of the
  field's papers of the day, which stand in for likes (their own papers are
  left out of P@10: they come in their own section);
- less like this: the best-ranked paper outside the field in the first 10
  is disliked; P@10 after, and the share of the first 10 in that paper's
  primary category before and after;
- judged: with tests/fixtures/judged/judgements.json present, P@10 by a
  blind judge's relevance marks for the four readers of
  tests/fixtures/judged/candidates.json (``--write-candidates`` makes it).

Cost: the corpus once, then 1,000 readers (1-3 keywords; half with 8 liked
papers of a third day, a tenth following two authors) over 1,125 papers,
against the CPU the cycle spends matching and composing for them.

The previous ranker is the ranking code of ``--baseline`` (a git revision,
default the last one before the topic ranker), run from ``git archive`` in a
subprocess: same scenarios, same data, same machine, same run.

    python benchmarks/ranking_quality.py [--no-cost] [--readers 1000] [--baseline REV]
    python benchmarks/ranking_quality.py --write-candidates

Data: benchmarks/data/arxiv-listing_*.jsonl.gz (provenance in
tests/fixtures/PROVENANCE.md). The listings carry no submission times;
papers are dated by their arXiv number (numbers are handed out in
submission order), which is the order date-sorting would give.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# the baseline's child process runs the same script against the baseline's code
sys.path.insert(0, os.environ.get("RANKING_CODE", str(ROOT)))

from digest import ranking  # noqa: E402
from digest.matching.rules import match_all  # noqa: E402
from digest.models import Liked, Match, Paper, Settings, Subscriber  # noqa: E402

BASELINE = "ec9e41f"  # main before the topic ranker
DATA = ROOT / "benchmarks" / "data"
DAYS = ("2026-06-09", "2026-06-16", "2026-06-30")
# fmt: off
BROAD = (
    "model", "learning", "method", "data", "framework", "system", "task", "performance",
    "approach", "language", "training", "benchmark", "generation", "reasoning", "feature",
    "agent", "LLM", "image", "network", "video",
)
FIELDS = (
    "cs.RO", "cs.SD", "cs.IT", "cs.GR", "cs.GT", "cs.MA", "cs.IR", "cs.LG", "cs.CE", "cs.HC",
    "cs.CY", "cs.CR", "cs.MM", "cs.CL", "cs.CV",
)
# fmt: on
DRAWS, LIKES, TOP = 3, 8, 10
JUDGED = ROOT / "tests" / "fixtures" / "judged"
# the judged readers (name, day, keyword, field): one broad keyword each, a field
# with 5+ papers among its matches. The first set was made to judge the topic
# ranker; the second, made after it was tuned on the first, is held out: other
# days, other keyword x field pairs, and candidates from three rankers.
JUDGED_SETS: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "first": (
        ("robotics", "2026-06-09", "model", "cs.RO"),
        ("multi-agent", "2026-06-09", "agent", "cs.MA"),
        ("information theory", "2026-06-09", "system", "cs.IT"),
        ("graphics", "2026-06-09", "method", "cs.GR"),
    ),
    "second": (
        ("language models", "2026-06-30", "model", "cs.CL"),
        ("machine learning", "2026-06-30", "language", "cs.LG"),
        ("computer vision", "2026-06-16", "reasoning", "cs.CV"),
        ("wireless communication", "2026-06-30", "model", "cs.IT"),
        ("computer graphics", "2026-06-30", "framework", "cs.GR"),
        ("robot learning", "2026-06-16", "model", "cs.RO"),
    ),
}
# the second set's candidates: the first 12 of these rankers and of the working tree
SECOND_RANKERS = ("ec9e41f", "f3ad594")  # words only; topics by categories alone
COMPOSE_SAMPLE = 50
# fmt: off
COST_KEYWORDS = (
    "language model", "agent", "benchmark", "diffusion", "reinforcement learning",
    "transformer", "graph", "segmentation", "retrieval", "reasoning", "multimodal", "dataset",
    "evaluation", "LLM", "video",
)
# fmt: on


def load(day: str) -> list[Paper]:
    rows = {}
    with gzip.open(DATA / f"arxiv-listing_{day}.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            rows[r["id"]] = r
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    return [
        Paper(
            id=r["id"],
            version=1,
            title=r["title"],
            abstract=r["summary"],
            authors=tuple(r["authors"]),
            categories=tuple(r["categories"]),
            primary_category=r["categories"][0],
            published=start + timedelta(seconds=i),
            updated=start + timedelta(seconds=i),
        )
        for i, r in enumerate(sorted(rows.values(), key=lambda r: r["id"]))
    ]


# --------------------------------------------------------------------------
# Readers: plain data, so the baseline's process ranks the very same ones


def scenarios(days: Mapping[str, list[Paper]]) -> list[dict[str, Any]]:
    """Every reader of the module docstring, each a dict: day, keywords, field, likes, …"""
    out: list[dict[str, Any]] = []
    rng = random.Random(20260609)
    for day in DAYS:
        today = days[day]
        seen = {p.id for p in today}
        pool = [p for d in DAYS if d != day for p in days[d] if p.id not in seen]
        pool = list({p.id: p for p in pool}.values())
        for keyword in BROAD:
            matches = match_all(today, Subscriber("r@example.org", (keyword,)))
            if len(matches) < 50:
                continue
            for field in FIELDS:
                n = sum(field in m.paper.categories for m in matches)
                liked = [p.id for p in pool if field in p.categories]
                if n < 3 or n / len(matches) > 0.4 or len(liked) < LIKES:
                    continue
                base: dict[str, Any] = {"day": day, "keywords": [keyword], "field": field}
                out.append({**base, "kind": "keyword only", "likes": []})
                for draw in range(DRAWS):
                    likes = rng.sample(liked, LIKES)
                    out.append({**base, "kind": "overlap", "likes": likes, "draw": draw})
        for field in FIELDS:
            liked = [p.id for p in pool if field in p.categories]
            own = [p for p in today if field in p.categories]
            if len(own) < TOP or len(liked) < LIKES:
                continue
            for draw in range(DRAWS):
                base = {"day": day, "keywords": [], "field": field, "draw": draw}
                out.append({**base, "kind": "discovery", "likes": rng.sample(liked, LIKES)})
                authors = [a for p in rng.sample(own, 2) for a in p.authors[:1]]
                out.append(
                    {
                        **base,
                        "kind": "follows",
                        "keywords": ["model"],
                        "authors": authors,
                        "likes": [],
                    }
                )
    return out


def judged_readers(days: Mapping[str, list[Paper]], which: str) -> list[dict[str, Any]]:
    """A judged set's readers; 8 likes each, drawn from the field's papers of the other days."""
    rng = random.Random("judged" if which == "first" else f"judged-{which}")
    out = []
    for name, day, keyword, field in JUDGED_SETS[which]:
        seen = {p.id for p in days[day]}
        pool = {p.id: p for d in DAYS if d != day for p in days[d] if p.id not in seen}
        liked = sorted(i for i, p in pool.items() if field in p.categories)
        out.append(
            {
                "kind": "judged",
                "set": which,
                "name": name,
                "day": day,
                "keywords": [keyword],
                "field": field,
                "likes": rng.sample(liked, LIKES),
            }
        )
    return out


def judged_folder(which: str) -> Path:
    return JUDGED if which == "first" else JUDGED / which


# --------------------------------------------------------------------------
# Ranking one reader, with whichever digest.ranking this process imported


def _matches(reader: Mapping[str, Any], day: Sequence[Paper]) -> tuple[Match, ...]:
    if not reader["keywords"]:
        return tuple(Match(paper=p, keywords=()) for p in day)  # discovery: the whole day
    sub = Subscriber(
        "r@example.org", tuple(reader["keywords"]), authors=tuple(reader.get("authors", ()))
    )
    return match_all(day, sub)


def _ranked(
    reader: Mapping[str, Any],
    matches: Sequence[Match],
    corpus: ranking.Corpus,
    papers: Mapping[str, Paper],
    dislikes: Sequence[str],
    baseline: bool,
) -> list[tuple[str, str | None]]:
    likes = [Liked(arxiv_id=i) for i in reader["likes"]]
    if baseline and not hasattr(ranking, "FIELD_REASON"):  # the words-only ranker's API
        profile = (
            ranking.build_profile(corpus, likes, dislikes=dislikes, papers=papers)
            if likes or dislikes
            else ranking.NO_PROFILE
        )
        ranked = ranking.rank(matches, corpus, profile)
        return [(r.match.paper.id, f"like: {r.like}" if r.like else None) for r in ranked]  # type: ignore[attr-defined]
    profile = ranking.build_profile(
        corpus,
        likes,
        dislikes=dislikes,
        papers=papers,
        followed=[m.paper for m in matches if m.authors],
    )
    return [(r.match.paper.id, r.reason) for r in ranking.rank(matches, corpus, profile)]


def orders(
    readers: Sequence[Mapping[str, Any]], baseline: bool, embed: Any = None
) -> list[dict[str, Any]]:
    """Each reader's order (ids, reasons); for "overlap" readers also after one dislike.

    ``embed``: the semantic model (the working tree with ``settings.semantic``).
    """
    days = {d: load(d) for d in DAYS}
    papers = {p.id: p for d in DAYS for p in days[d]}
    corpora = {
        d: ranking.build_corpus(days[d], embed) if embed else ranking.build_corpus(days[d])
        for d in DAYS
    }
    out = []
    for reader in readers:
        day, field = reader["day"], reader["field"]
        matches = _matches(reader, days[day])
        ranked = _ranked(reader, matches, corpora[day], papers, (), baseline)
        result: dict[str, Any] = {"order": ranked}
        if reader["kind"] == "overlap":
            off = [i for i, _ in ranked[:TOP] if field not in papers[i].categories]
            if off:
                again = _ranked(reader, matches, corpora[day], papers, off[:1], baseline)
                result.update(disliked=off[0], after=again)
        out.append(result)
    return out


# --------------------------------------------------------------------------
# Figures


def p_at(ids: Sequence[str], field: str, papers: Mapping[str, Paper]) -> float:
    return sum(field in papers[i].categories for i in ids[:TOP]) / TOP


def calendar(reader: Mapping[str, Any], day: Sequence[Paper]) -> list[str]:
    newest = sorted(_matches(reader, day), key=lambda m: m.paper.published, reverse=True)
    return [m.paper.id for m in newest]


def _mean(xs: Sequence[float]) -> float:
    return statistics.fmean(xs) if xs else float("nan")


def report(
    readers: Sequence[Mapping[str, Any]],
    ranked: Mapping[str, Sequence[Mapping[str, Any]]],
    days: Mapping[str, list[Paper]],
) -> None:
    """P@10 tables; ``ranked``: each ranker's orders ("previous", "new", maybe "meaning")."""
    papers = {p.id: p for d in DAYS for p in days[d]}
    names = list(ranked)
    rows: dict[str, dict[str, list[float]]] = {}
    by_field: dict[str, dict[str, list[float]]] = {}
    for k, reader in enumerate(readers):
        kind, field, day = reader["kind"], reader["field"], days[reader["day"]]
        own = set(reader.get("authors", ()))
        skip = {p.id for p in day if own & set(p.authors)}  # followed authors' own papers
        cal = [i for i in calendar(reader, day) if i not in skip]
        rel = sum(field in papers[i].categories for i in cal)
        row = rows.setdefault(kind, {})
        values = [("calendar", p_at(cal, field, papers))]
        for name in names:
            order = ranked[name][k]["order"]
            ids = [i for i, _ in order if i not in skip]
            values.append((name, p_at(ids, field, papers)))
            values.append((f"why {name}", sum(r is not None for _, r in order[:TOP]) / TOP))
        values.append(("ceiling", min(rel, TOP) / TOP))
        for name, value in values:
            row.setdefault(name, []).append(value)
        if kind == "overlap":
            f = by_field.setdefault(field, {})
            for name, value in values:
                if not name.startswith("why") and name != "ceiling":
                    f.setdefault(name, []).append(value)
            for name in names:
                result = ranked[name][k]
                if "after" not in result:
                    continue
                cat = papers[result["disliked"]].primary_category
                before = [i for i, _ in result["order"] if i != result["disliked"]]
                after = [i for i, _ in result["after"] if i != result["disliked"]]
                shunned = rows.setdefault(f"less like this ({name})", {})
                for when, ids in (("before", before), ("after", after)):
                    shunned.setdefault(f"P@10 {when}", []).append(p_at(ids, field, papers))
                    share = sum(papers[i].primary_category == cat for i in ids[:TOP]) / TOP
                    shunned.setdefault(f"its category {when}", []).append(share)
    print(f"P@{TOP} (mean over readers): the share of the first {TOP} in the reader's field;")
    print(f"why: the share of the first {TOP} with a reason line")
    cols = ["calendar", *names, "ceiling", *(f"why {n}" for n in names)]
    print(f"{'readers':<14} {'n':>5} " + " ".join(f"{c:>12}" for c in cols))
    for kind in ("overlap", "keyword only", "discovery", "follows"):
        if kind in rows:
            r = rows[kind]
            n_readers = len(r["calendar"])
            print(f"{kind:<14} {n_readers:>5} " + " ".join(f"{_mean(r[c]):>12.3f}" for c in cols))
    heads = ["calendar", *names]
    print(f"\nOverlapping fields by field (P@10: {' / '.join(heads)}, readers):")
    for field, f in sorted(by_field.items()):
        cells = " / ".join(f"{_mean(f[h]):.2f}" for h in heads)
        print(f"  {field:<6} {cells}  ({len(f['calendar'])})")
    for name in names:
        shun = rows.get(f"less like this ({name})")
        if shun:
            r = shun
            print(
                f"\nLess like this ({name}, {len(r['P@10 before'])} readers): P@10 "
                f"{_mean(r['P@10 before']):.3f} -> {_mean(r['P@10 after']):.3f}; the disliked "
                f"paper's category in the first {TOP}: {_mean(r['its category before']):.3f} -> "
                f"{_mean(r['its category after']):.3f}"
            )


def judged(
    readers: Sequence[Mapping[str, Any]],
    ranked: Mapping[str, Sequence[Mapping[str, Any]]],
    days: Mapping[str, list[Paper]],
) -> None:
    for which in JUDGED_SETS:
        pick = [i for i, r in enumerate(readers) if r["set"] == which]
        chosen = {name: [orders[i] for i in pick] for name, orders in ranked.items()}
        _judged_set(which, [readers[i] for i in pick], chosen, days)


def _judged_set(
    which: str,
    readers: Sequence[Mapping[str, Any]],
    ranked: Mapping[str, Sequence[Mapping[str, Any]]],
    days: Mapping[str, list[Paper]],
) -> None:
    path = judged_folder(which) / "judgements.json"
    if not path.exists():
        print(f"\nJudged P@{TOP}, {which} set: no {path.relative_to(ROOT)} yet")
        return
    marks: dict[str, dict[str, int]] = json.loads(path.read_text())
    print(
        f"\nJudged P@{TOP}, {which} set ({path.relative_to(ROOT)}; "
        "unjudged papers count as not relevant):"
    )
    totals: dict[str, list[float]] = {"calendar": [], **{name: [] for name in ranked}}
    for k, reader in enumerate(readers):
        mark = marks.get(reader["name"], {})
        cells = []
        for name in totals:
            if name == "calendar":
                ids = calendar(reader, days[reader["day"]])
            else:
                ids = [i for i, _ in ranked[name][k]["order"]]
            top = ids[:TOP]
            value = sum(mark.get(i, 0) for i in top) / TOP
            totals[name].append(value)
            unjudged = sum(i not in mark for i in top)
            cells.append(f"{name} {value:.1f}" + (f" ({unjudged} unjudged)" if unjudged else ""))
        print(f"  {reader['name']:<22} " + ", ".join(cells))
    print("  mean                   " + ", ".join(f"{k} {_mean(v):.3f}" for k, v in totals.items()))


def write_candidates(
    which: str,
    readers: Sequence[Mapping[str, Any]],
    rankings: Sequence[Sequence[Mapping[str, Any]]],
    days: Mapping[str, list[Paper]],
) -> Path:
    """40 candidates a reader: each ranking's first few, filled in calendar order, shuffled.

    ``rankings``: one list of orders (one per reader) per ranker. The first
    set took two rankers' first 20, the second three rankers' first 12.
    Refuses to replace candidates that have been judged: the marks would no
    longer be about them.
    """
    folder = judged_folder(which)
    if (folder / "judgements.json").exists():
        raise SystemExit(f"{folder.relative_to(ROOT)} is judged; move its judgements.json first")
    each = 20 if len(rankings) <= 2 else 12
    papers = {p.id: p for d in DAYS for p in days[d]}
    out = []
    for k, reader in enumerate(readers):
        ids = dict.fromkeys(i for ranked in rankings for i, _ in ranked[k]["order"][:each])
        for i in calendar(reader, days[reader["day"]]):
            if len(ids) >= 40:
                break
            ids.setdefault(i)
        chosen = list(ids)
        random.Random(reader["name"]).shuffle(chosen)
        out.append(
            {
                "reader": reader["name"],
                "keyword": reader["keywords"][0],
                "liked": [
                    {"title": papers[i].title, "abstract": papers[i].abstract}
                    for i in reader["likes"]
                ],
                "candidates": [
                    {
                        "id": i,
                        "title": papers[i].title,
                        "abstract": papers[i].abstract,
                        "categories": list(papers[i].categories),
                    }
                    for i in chosen
                ],
            }
        )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "candidates.json"
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------
# Cost


def cost_readers(n: int) -> list[dict[str, Any]]:
    rng = random.Random(10)
    pool = [p.id for p in load(DAYS[2])]
    readers = []
    for i in range(n):
        likes = rng.sample(pool, LIKES) if i % 2 else []
        authors = [a for p in rng.sample(load_cached(DAYS[0]), 2) for a in p.authors[:1]]
        readers.append(
            {
                "keywords": rng.sample(COST_KEYWORDS, rng.randint(1, 3)),
                "likes": likes,
                "authors": authors if i % 10 == 0 else [],
            }
        )
    return readers


_LOADED: dict[str, list[Paper]] = {}


def load_cached(day: str) -> list[Paper]:
    if day not in _LOADED:
        _LOADED[day] = load(day)
    return _LOADED[day]


def ranking_cpu(
    readers: Sequence[Mapping[str, Any]], baseline: bool, semantic: bool = False
) -> dict[str, float]:
    """CPU seconds: the corpus once (with ``semantic``: the model loaded, the papers
    embedded), then every reader's profile and order."""
    day = list({p.id: p for d in DAYS[:2] for p in load_cached(d)}.values())
    papers = {p.id: p for d in DAYS for p in load_cached(d)}
    subs = [
        Subscriber(f"u{i}@example.org", tuple(r["keywords"]), authors=tuple(r["authors"]))
        for i, r in enumerate(readers)
    ]
    matches = [match_all(day, s) for s in subs]
    t0 = time.process_time()
    if semantic:
        ranking.load_semantic.cache_clear()
        corpus = ranking.build_corpus(day, ranking.load_semantic())
    else:
        corpus = ranking.build_corpus(day)
    t1 = time.process_time()
    for r, ms in zip(readers, matches, strict=True):
        _ranked(r, ms, corpus, papers, (), baseline)
    t2 = time.process_time()
    return {"corpus": t1 - t0, "readers": t2 - t1, "matches": sum(map(len, matches))}


def cycle_cpu(readers: Sequence[Mapping[str, Any]]) -> tuple[float, float]:
    """The CPU a cycle spends on the same readers without ranking: matching, composing (sampled)."""
    from digest import compose

    day = list({p.id: p for d in DAYS[:2] for p in load_cached(d)}.values())
    subs = [Subscriber(f"u{i}@example.org", tuple(r["keywords"])) for i, r in enumerate(readers)]
    m0 = time.process_time()
    for s in subs:
        match_all(day, s)
    m1 = time.process_time()
    sample = subs[:: max(1, len(subs) // COMPOSE_SAMPLE)]
    unranked = ranking.build_corpus(())
    for s in sample:
        ms = ranking.rank(match_all(day, s), unranked)
        compose.compose(s, ms, Settings(), cycle_id="bench", created=datetime.now(UTC))
    return m1 - m0, (time.process_time() - m1) / len(sample) * len(subs)


def cost(n_readers: int, costs: Mapping[str, Mapping[str, float]]) -> None:
    """``costs``: each ranker's CPU ("previous", "new", maybe "meaning")."""
    readers = cost_readers(n_readers)
    matching, composing = cycle_cpu(readers)
    base = matching + composing
    old = costs["previous"]
    print(
        f"\nCost: 1,125 papers, {n_readers} readers (half with 8 likes, a tenth following "
        f"2 authors), {old['matches'] / n_readers:.0f} matches a reader, CPU seconds:"
    )
    print(f"  {'':<22} " + " ".join(f"{name:>9}" for name in costs))
    for key, label in (("corpus", "corpus built once"), ("readers", "profiles + orders")):
        print(f"  {label:<22} " + " ".join(f"{c[key]:>9.2f}" for c in costs.values()))
    totals = {name: c["corpus"] + c["readers"] for name, c in costs.items()}
    print(f"  {'ranking in total':<22} " + " ".join(f"{t:>9.2f}" for t in totals.values()))
    print(
        f"  matching {matching:.2f} s + composing {composing:.2f} s = {base:.2f} s without ranking"
    )
    before = base + totals["previous"]
    for name, total in totals.items():
        if name != "previous":
            print(
                f"  the cycle's CPU with {name}: {before:.2f} s before, {base + total:.2f} s "
                f"({(total - totals['previous']) / before:+.1%})"
            )


# --------------------------------------------------------------------------


def _baseline(rev: str, job: Mapping[str, Any]) -> Any:
    """Run ``job`` in a child process with the ranking code of ``rev``."""
    archive = subprocess.run(["git", "archive", rev, "digest"], cwd=ROOT, capture_output=True)
    if archive.returncode != 0:
        raise SystemExit(f"no baseline: git archive {rev}: {archive.stderr.decode()}")
    with tempfile.TemporaryDirectory(prefix="ranking-base-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(tmp, filter="data")
        done = subprocess.run(
            [sys.executable, __file__, "--child"],
            input=json.dumps(job),
            env={**os.environ, "RANKING_CODE": tmp},
            capture_output=True,
            text=True,
            timeout=1800,
        )
    if done.returncode != 0:
        raise SystemExit(f"the baseline failed:\n{done.stderr}")
    return json.loads(done.stdout)


def child() -> None:
    job = json.load(sys.stdin)
    out: dict[str, Any] = {"orders": orders(job["readers"], baseline=True)}
    if job.get("cost"):
        out["cost"] = ranking_cpu(job["cost"], baseline=True)
    print(json.dumps(out))


def _semantic_model() -> Any:
    """The semantic model when the extra is installed, else None (its column is left out)."""
    try:
        return ranking.load_semantic()
    except Exception as exc:  # MissingExtraError: the default install
        print(f"(no 'meaning' column: {exc})\n")
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--no-cost", action="store_true", help="quality only")
    ap.add_argument("--readers", type=int, default=1000, help="readers for the cost figure")
    ap.add_argument("--baseline", default=BASELINE, help="the previous ranker's git revision")
    ap.add_argument(
        "--write-candidates",
        choices=sorted(JUDGED_SETS),
        help="write a judged set's candidates (refused once it is judged)",
    )
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child()
        return
    days = {d: load_cached(d) for d in DAYS}
    readers = scenarios(days)
    judges = [r for which in JUDGED_SETS for r in judged_readers(days, which)]
    everyone = [*readers, *judges]
    costs = cost_readers(args.readers) if not args.no_cost else []
    base = _baseline(args.baseline, {"readers": everyone, "cost": costs})
    ranked = {"previous": base["orders"], "new": orders(everyone, baseline=False)}
    embed = _semantic_model()
    if embed is not None:
        ranked["meaning"] = orders(everyone, baseline=False, embed=embed)
    print(
        f"Previous ranker: {args.baseline}; new: the working tree"
        + ("; meaning: the working tree with settings.semantic\n" if embed else "\n")
    )
    n = len(readers)
    report(readers, {name: o[:n] for name, o in ranked.items()}, days)
    if args.write_candidates:
        which = args.write_candidates
        pick = [k for k, r in enumerate(judges) if r["set"] == which]
        chosen = [judges[k] for k in pick]
        revs = [args.baseline] if which == "first" else list(SECOND_RANKERS)
        rankings = [
            [ranked["previous"][n + k] for k in pick]
            if rev == args.baseline
            else _baseline(rev, {"readers": chosen})["orders"]
            for rev in revs
        ]
        rankings.append([ranked["new"][n + k] for k in pick])
        path = write_candidates(which, chosen, rankings, days)
        print(f"\nwrote {path.relative_to(ROOT)} from {', '.join(revs)} and the working tree")
    judged(judges, {name: o[n:] for name, o in ranked.items()}, days)
    if costs:
        spent = {"previous": base["cost"], "new": ranking_cpu(costs, baseline=False)}
        if embed is not None:
            spent["meaning"] = ranking_cpu(costs, baseline=False, semantic=True)
        cost(args.readers, spent)


if __name__ == "__main__":
    main()
