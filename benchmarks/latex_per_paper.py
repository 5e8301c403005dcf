"""LaTeX conversion cost per paper on a recorded day of arXiv results.

digest converts the title, abstract, comment and every author name of each
paper it shows, every cycle. This prints the CPU time per paper (all those
fields) and per abstract over the 100 entries of a recorded query page, the
cache bypassed so every call parses, best of ROUNDS runs over the whole page
(CPU time, not wall time: the figures must not depend on what else the machine
runs). BASELINE is the implementation before grouped scripts, fractions and
``\\over`` were handled (commit 23904f1), measured the same way, interleaved
with the new one, on the development machine on 2026-11-29.

    python benchmarks/latex_per_paper.py
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from digest import latex
from digest.arxiv.feed import parse_page
from digest.models import Paper

FIXTURE = (
    Path(__file__).parent.parent / "tests/fixtures/api_new_2026-04_all-testing_start-0_max-100.xml"
)
# CPU ms per paper (all fields) and per abstract, before this change.
BASELINE = (0.95, 0.93)
ROUNDS = 30


def best_ms_per_paper(
    convert: Callable[[str], str], papers: Sequence[Paper], fields: Callable[[Paper], list[str]]
) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.process_time()
        for p in papers:
            for field in fields(p):
                convert(field)
        best = min(best, time.process_time() - start)
    return best * 1000 / len(papers)


def main() -> None:
    papers = parse_page(FIXTURE.read_bytes()).papers
    convert = latex.text.__wrapped__  # bypass the cache: each paper is new to a cycle
    convert("warm up $x$")
    per_paper = best_ms_per_paper(
        convert, papers, lambda p: [p.title, p.abstract, p.comment or "", *p.authors]
    )
    per_abstract = best_ms_per_paper(convert, papers, lambda p: [p.abstract])
    print(f"{len(papers)} papers from {FIXTURE.name}, best of {ROUNDS} rounds, CPU time")
    print(f"per paper:    {per_paper:.3f} ms  (baseline {BASELINE[0]:.2f} ms)")
    print(f"per abstract: {per_abstract:.3f} ms  (baseline {BASELINE[1]:.2f} ms)")


if __name__ == "__main__":
    main()
