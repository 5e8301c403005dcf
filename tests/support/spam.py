"""A realistic day's digests, and SpamAssassin's verdict on a message.

Shared by tests/test_spam.py and benchmarks/spam_score.py. The day is the
recorded arXiv responses in tests/fixtures/ (143 real papers: software
testing, condensed matter, particle physics, machine learning, statistics)
matched against subscribers who follow broad and narrow keywords, composed
exactly as ``digest once`` would. SpamAssassin runs with ``-L`` (local
tests only: no DNS, no network) and ``-t`` (report).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from pathlib import Path

from digest import ranking as rank
from digest.arxiv.feed import parse_page
from digest.compose.render import LinkMaker, build_message, compose
from digest.errors import ArxivQueryError
from digest.matching.rules import match_all
from digest.models import Paper, Settings, SmtpSettings, Subscriber, format_sender
from digest.replies.commands import reader_links
from digest.replies.tokens import ReplySecret
from tests.support.paths import FIXTURES

CREATED = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
REPLY_SECRET = ReplySecret(b"spam-test-reply-secret-0123456789")
SETTINGS = Settings(smtp=SmtpSettings(sender="Daily Papers <papers@digest.example.org>"))

# Who reads what on the realistic day: a spread of narrow and broad interests,
# one subscriber with many keywords (long subject), one author follower, one
# day with nothing new (send_empty).
SUBSCRIBERS = (
    Subscriber(
        email="alice@example.org",
        name="Alice Example",
        keywords=("metamorphic testing", "mutation testing", "large language model"),
    ),
    Subscriber(
        email="bob@example.org",
        keywords=("proton", "electron", "luttinger liquid", "superfluid"),
    ),
    Subscriber(
        email="carol@example.org",
        name="Carol",
        keywords=("neural network", "deep learning", "reinforcement learning"),
    ),
    Subscriber(
        email="dan@example.org",
        keywords=("hypothesis testing", "group testing", "gaussian"),
    ),
    Subscriber(
        email="erin@example.org",
        name="Erin",
        keywords=(
            "testing",
            "learning",
            "quantum",
            "graph",
            "energy",
            "privacy",
            "hypertrees",
        ),
    ),
    Subscriber(email="frank@example.org", keywords=("baryogenesis",)),
    Subscriber(
        email="grace@example.org",
        keywords=("flaky test",),
        authors=("Hong Zhu",),
    ),
    Subscriber(email="heidi@example.org", keywords=("hypertrees",), send_empty=True),
)


def day_papers() -> list[Paper]:
    """Every distinct paper in the recorded arXiv answers."""
    seen: dict[str, Paper] = {}
    for path in sorted(FIXTURES.glob("api_*.xml")):
        try:
            page = parse_page(path.read_bytes())
        except ArxivQueryError:
            continue  # the recorded error answer
        for paper in page.papers:
            seen[paper.id] = paper
    return list(seen.values())


def day_messages(templates: Path | None = None, *, links: bool = True) -> list[tuple[str, bytes]]:
    """(subscriber, message bytes) for each digest of the day, as sent (with reply links)."""
    settings = Settings(smtp=SETTINGS.smtp, templates=templates)
    operator = format_sender(settings.smtp.sender)
    papers = day_papers()
    corpus = rank.build_corpus(papers)  # as the cycle does: once, for every reader
    out = []
    for sub in SUBSCRIBERS:
        matches = match_all(papers, sub)
        if not matches and not sub.send_empty:
            continue
        digest, rendered = compose(
            sub,
            rank.rank(matches, corpus),
            settings,
            cycle_id="20261130.spam",
            created=CREATED,
            empty_reason=None if matches else "no paper matched your keywords",
            links=_links(operator, sub.email) if links else None,
        )
        out.append((sub.email, bytes(build_message(digest, rendered, settings))))
    return out


def _links(operator: Address, email: str) -> LinkMaker:
    return lambda ids: reader_links(REPLY_SECRET, operator, email, ids, issued=CREATED.date())


@dataclass(frozen=True, slots=True)
class Verdict:
    score: float
    rules: dict[str, float]  # rule name -> points


def spamassassin() -> str | None:
    return shutil.which("spamassassin")


_REPORT = re.compile(
    r"^Content analysis details:\s+\((-?\d+(?:\.\d+)?) points.*?\n-{4} -+ -+\n(.*?)(?:\n\s*\n|\Z)",
    re.M | re.S,
)
_TAG = "X-Digest-Sample"
_TAGGED = re.compile(rf"^{_TAG}: (\d+)$", re.M)
# One row of the report's table: " 0.7 HTML_FONT_LOW_CONTRAST BODY: ..."
_ROW = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\b", re.M)


def mbox(messages: list[bytes]) -> bytes:
    """The messages as one mbox (mboxrd quoting), each tagged with its index.

    One spamassassin run then scores them all; it does not report them in
    input order, so the tag (a header no rule looks at) says which is which.
    """
    out = []
    for i, raw in enumerate(messages):
        body = re.sub(rb"(?m)^(>*From )", rb">\1", raw.replace(b"\r\n", b"\n"))
        out.append(
            b"From digest@localhost Mon Nov 30 07:00:00 2026\n"
            + f"{_TAG}: {i}\n".encode()
            + body.rstrip(b"\n")
        )
    return b"\n\n".join(out) + b"\n"


def score_all(messages: list[bytes]) -> list[Verdict]:
    """SpamAssassin's local-rules score and fired rules for each message, in order.

    One process for all of them: loading the rules takes most of a second.
    """
    exe = spamassassin()
    if exe is None:
        raise RuntimeError("spamassassin is not installed")
    done = subprocess.run(
        [exe, "-L", "-t", "--mbox"],
        input=mbox(messages),
        capture_output=True,
        timeout=600,
        check=True,
    )
    report = done.stdout.decode("utf-8", "replace")
    verdicts: dict[int, Verdict] = {}
    pos = 0
    for m in _REPORT.finditer(report):
        tags = _TAGGED.findall(report, pos, m.start())
        pos = m.end()
        if tags:
            verdicts[int(tags[-1])] = Verdict(
                score=float(m.group(1)),
                rules={r.group(2): float(r.group(1)) for r in _ROW.finditer(m.group(2))},
            )
    if sorted(verdicts) != list(range(len(messages))):
        raise RuntimeError(
            f"spamassassin reported on {len(verdicts)} of {len(messages)} messages:\n"
            f"{done.stderr.decode('utf-8', 'replace')[-2000:]}"
        )
    return [verdicts[i] for i in range(len(messages))]
