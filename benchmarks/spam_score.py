"""SpamAssassin's score for each digest of a realistic day: main's templates versus now.

The day is tests/support/spam.py's: the recorded arXiv answers in
tests/fixtures/ (143 real papers) and eight subscribers with narrow and broad
keywords, one following an author, one with nothing new. Each digest is
composed twice, with the templates of a git revision (the baseline, default
``main``) and with the working tree's, and both sets are scored in the same
run by ``spamassassin -L -t`` (local rules only: no DNS, no network). Prints
each digest's score and the rules that scored, then min / median / max.

    python benchmarks/spam_score.py [--before main]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from digest.compose.render import TEMPLATE_NAMES
from tests.support.spam import Verdict, day_messages, score_all, spamassassin

ROOT = Path(__file__).resolve().parent.parent


def templates_at(revision: str, into: Path) -> Path | None:
    """The email templates of ``revision`` written into a folder, or None if git cannot."""
    for name in TEMPLATE_NAMES:
        done = subprocess.run(
            ["git", "show", f"{revision}:templates/email/{name}"],
            cwd=ROOT,
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            return None
        (into / name).write_bytes(done.stdout)
    return into


def rules(v: Verdict) -> str:
    scored = [f"{name} {points:+.1f}" for name, points in v.rules.items() if points]
    return ", ".join(scored) or "-"


def summary(label: str, verdicts: list[Verdict]) -> str:
    s = [v.score for v in verdicts]
    return (
        f"{label}: min {min(s):.1f}  median {statistics.median(s):.1f}  max {max(s):.1f}"
        f"  (> 1.0: {sum(x > 1.0 for x in s)} of {len(s)})"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", default="main", help="git revision of the baseline templates")
    args = ap.parse_args()
    if spamassassin() is None:
        print("skipped: spamassassin is not installed (Debian package spamassassin)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        old = templates_at(args.before, Path(tmp))
        if old is None:
            print(f"no baseline: git cannot show {args.before}:templates/email/")
        labels: list[tuple[str, Path | None]] = [("before", old)] if old is not None else []
        labels.append(("after", None))
        composed = {label: day_messages(templates) for label, templates in labels}
    names = [who for who, _ in composed["after"]]
    started = time.perf_counter()
    flat = [raw for label, _ in labels for _, raw in composed[label]]
    verdicts = score_all(flat)
    seconds = time.perf_counter() - started
    by_label = {
        label: verdicts[i * len(names) : (i + 1) * len(names)]
        for i, (label, _) in enumerate(labels)
    }
    print(f"spamassassin -L -t on {len(names)} digests of a realistic day\n")
    for who_index, who in enumerate(names):
        size = len(composed["after"][who_index][1])
        print(f"{who}  ({size // 1000} kB)")
        for label, _ in labels:
            v = by_label[label][who_index]
            print(f"  {label:<6} {v.score:5.1f}  {rules(v)}")
    print()
    for label, _ in labels:
        print(summary(label, by_label[label]))
    print(f"\n{len(flat)} messages scored in {seconds:.1f} s ({seconds / len(flat):.1f} s each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
