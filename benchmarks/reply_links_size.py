"""What the reply links cost in bytes: a realistic day's digests with and without them.

The day is tests/support/spam.py's (143 real papers, eight subscribers with
narrow and broad keywords). Each digest is composed twice, without reply
links (the baseline: what digests were before) and with them (footer links,
"more like this" / "less like this" under every shown paper), and the HTML
part, the whole message and the papers shown are compared. compose lowers
the papers per keyword until the HTML fits 100 KB, so "shown" says whether
the links turned full entries into compact rows (more/less links go on full
entries only: rows are there to save bytes).

    python benchmarks/reply_links_size.py
"""

from __future__ import annotations

import email
import statistics
import sys
from email import policy
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.spam import day_messages


def parts(raw: bytes) -> tuple[int, int, str]:
    """(HTML bytes, message bytes, "papers in full + compact rows") of one digest."""
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    html = msg.get_body(("html",))
    assert html is not None
    text = html.get_content()
    full, rows = text.count('class="paper"'), text.count('class="row"')
    return len(text.encode()), len(raw), f"{full}+{rows}"


def main() -> None:
    before = dict(day_messages(links=False))
    after = dict(day_messages(links=True))
    print(
        f"{'subscriber':<22} {'html before':>11} {'html after':>10} {'per paper':>9} "
        f"{'message':>15} {'shown':>9}"
    )
    per_paper = []
    for who in before:
        h0, m0, n0 = parts(before[who])
        h1, m1, n1 = parts(after[who])
        full = int(n1.split("+")[0])
        each = (h1 - h0) / full if n1 == n0 and full else float("nan")
        if n1 == n0 and full:
            per_paper.append(each)
        print(f"{who:<22} {h0:>11,} {h1:>10,} {each:>9.0f} {m0:>7,}->{m1:<7,} {n0:>5}->{n1:<5}")
    if per_paper:
        print(
            "added HTML per paper shown in full (footer included): "
            f"median {statistics.median(per_paper):.0f} bytes, max {max(per_paper):.0f}; "
            "HTML limit 100,000 bytes"
        )


if __name__ == "__main__":
    main()
