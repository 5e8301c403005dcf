"""The delivery promise, checked from the outside.

Inputs are only what a reader or an operator can see: the messages the SMTP
server accepted, the recorded arXiv entries the server held, the config,
and the database read back through ``digest status``. Which papers a
reader should get is computed independently, with the contract's own
definition of "matches" (``digest.matching.rules.match_paper``) and where a
new reader starts (arXiv's latest announcement whole, or ``lookback_days``
back if earlier), never by asking digest's cycle code. Readers are
known by their address's identity (``digest.models.address_key``, the
contract's "one reader per mailbox"): a message to ``user@xn--bcher-kva.example``
is one to ``user@bücher.example``, and re-spelling an address keeps the reader.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from digest.arxiv.feed import parse_page
from digest.matching.rules import match_paper
from digest.models import Config, Paper, address_key
from tests.faults.smtp import Accepted

_ABS = re.compile(r"arxiv\.org/abs/([A-Za-z\-.]*/?\d+(?:\.\d+)?)(?:v\d+)?")
_LISTED = re.compile(r"^ *Abstract: https://arxiv\.org/abs/(\S+)$", re.M)
# what may follow "pending": skipped papers, a reader's choice by reply ("; 1 hard bounce(s)")
_STATUS = re.compile(r"^\s+(\S+@\S+): (\d+) delivered, (\d+) pending(?:[,;] .*)?$", re.M)


def papers_in(header: bytes, entries: Iterable[bytes]) -> dict[str, Paper]:
    """The recorded entries as papers, the newest version of each id."""
    out: dict[str, Paper] = {}
    for p in parse_page(header + b"".join(entries) + b"</feed>").papers:
        if p.id not in out or out[p.id].version < p.version:
            out[p.id] = p
    return out


def first_day_start(first_run: datetime, lookback_days: int) -> datetime:
    """Where a reader new at ``first_run`` starts, from arXiv's published schedule.

    Deadlines are 14:00 US Eastern on weekdays; the deadline of Monday to
    Thursday is announced at 20:00 that day, Friday's on Sunday. The latest
    announcement before the run carried what was submitted since the deadline
    before its own.
    """
    eastern = ZoneInfo("America/New_York")
    today = first_run.astimezone(eastern).date()
    deadlines = []  # (deadline, its announcement), oldest first
    for back in range(10, -1, -1):
        day = today - timedelta(days=back)
        if day.weekday() < 5:
            announced = day + timedelta(days=2 if day.weekday() == 4 else 0)
            deadlines.append(
                (
                    datetime.combine(day, time(14), tzinfo=eastern),
                    datetime.combine(announced, time(20), tzinfo=eastern),
                )
            )
    latest = max(i for i, (_, out) in enumerate(deadlines) if out <= first_run)
    opened = deadlines[latest - 1][0]
    return min(opened, first_run - timedelta(days=lookback_days))


def expected(
    config: Config, papers: Mapping[str, Paper], first_run: datetime
) -> dict[str, set[str]]:
    """Per reader (by identity): the matching ids submitted since their start at the first run."""
    since = first_day_start(first_run, config.settings.lookback_days)
    cats = config.settings.arxiv.categories
    return {
        address_key(sub.email): {
            pid
            for pid, p in papers.items()
            if p.published >= since and match_paper(p, sub, cats) is not None
        }
        for sub in config.subscribers
    }


def ids_in(accepted: Accepted) -> set[str]:
    """The papers one digest delivers: the ids of its abstract links."""
    body = accepted.message.get_body(("plain",))
    assert body is not None, "a digest without a text part"
    text = body.get_content()
    assert " more: " not in text, "a digest hid papers behind 'and N more': the check is blind"
    listed = _LISTED.findall(text)
    assert len(listed) == len(set(listed)), f"a paper listed twice in one digest: {listed}"
    return set(_ABS.findall(text))


@dataclass(frozen=True)
class Verdict:
    repeated: tuple[int, ...]  # numbers of the messages that repeated earlier ones

    @property
    def repeated_messages(self) -> int:
        return len(self.repeated)


def check_deliveries(
    accepted: Sequence[Accepted],
    want: Mapping[str, set[str]],
    *,
    max_repeated: int = 0,
    complete: bool = True,
) -> Verdict:
    """Every matching paper once, nothing else, at most ``max_repeated`` whole messages repeated.

    A repeat is allowed only as a whole message sent again (the one in flight
    when the process died between the server's "250" and the record), so a
    repeated message must carry exactly the papers of one earlier message.
    ``complete=False`` checks only "nothing twice, nothing unwanted" (before
    the final clean run).
    """
    problems: list[str] = []
    seen: dict[str, list[set[str]]] = {}
    repeated: list[int] = []
    for a in accepted:
        if len(a.rcpt_tos) != 1 or address_key(a.rcpt_tos[0]) not in want:
            problems.append(f"message {a.number} went to {a.rcpt_tos}")
            continue
        reader = address_key(a.rcpt_tos[0])
        ids = ids_in(a)
        earlier = seen.setdefault(reader, [])
        before = set().union(*earlier) if earlier else set()
        again = ids & before
        if again:
            repeated.append(a.number)
            if not any(ids == old for old in earlier):
                problems.append(
                    f"{reader}: message {a.number} repeats {sorted(again)} but is not a whole "
                    "earlier message sent again"
                )
        unwanted = ids - want[reader]
        if unwanted:
            problems.append(f"{reader}: message {a.number} delivered {sorted(unwanted)}")
        earlier.append(ids)
    if len(repeated) > max_repeated:
        problems.append(f"messages {repeated} repeated papers (at most {max_repeated} allowed)")
    if complete:
        for reader, ids in want.items():
            got = set().union(*seen.get(reader, [set()]))
            missing = ids - got
            if missing:
                problems.append(f"{reader}: never received {sorted(missing)}")
    assert not problems, "delivery promise broken:\n  " + "\n  ".join(problems)
    return Verdict(tuple(repeated))


def status_counts(status_output: str) -> dict[str, tuple[int, int]]:
    """``digest status`` per reader (by identity): (delivered, pending)."""
    return {address_key(m[1]): (int(m[2]), int(m[3])) for m in _STATUS.finditer(status_output)}
