"""What reader links and reply handling cost at a department's scale.

Prints, for 10,000 readers with 25 papers each (the largest scale the benchmarks plan for):

* building every digest's links (7 + 2 per paper mailto URIs, one HMAC
  each), beside the baseline of the same number of bare HMAC-SHA256 calls;
* classifying incoming mail per message (a Gmail unsubscribe, a Postfix DSN,
  an Exchange out-of-office, a 5 MB message), beside the baseline of the
  email package's parse alone.

    python benchmarks/replies_at_scale.py [--readers 10000] [--papers 25]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import sys
import time
from collections.abc import Callable
from datetime import date
from email.headerregistry import Address
from email.parser import BytesParser
from email.policy import default
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.replies.classify import classify  # noqa: E402
from digest.replies.commands import reader_links  # noqa: E402
from digest.replies.tokens import ReplySecret  # noqa: E402
from tests.support.mail_clients import gmail, plain  # noqa: E402

MAIL = ROOT / "tests" / "fixtures" / "mail"
SECRET = ReplySecret(b"benchmark-secret-0123456789abcdef")
OPERATOR = Address("Daily Papers", "papers", "digest.example.org")
TODAY = date(2026, 12, 3)


def timed(fn: Callable[[], object], repeat: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readers", type=int, default=10_000)
    parser.add_argument("--papers", type=int, default=25)
    args = parser.parse_args()
    papers = tuple(f"2612.{i:05d}" for i in range(args.papers))
    readers = [f"reader{i}@department.example.org" for i in range(args.readers)]

    links = timed(
        lambda: [reader_links(SECRET, OPERATOR, r, papers, issued=TODAY) for r in readers]
    )
    macs = args.readers * (6 + 2 * args.papers)
    bare = timed(
        lambda: [hmac.new(SECRET.key, b"x" * 40, hashlib.sha256).digest() for _ in range(macs)]
    )
    print(
        f"links for {args.readers} readers x {args.papers} papers: {links:.2f} s "
        f"({links / args.readers * 1e3:.3f} ms per digest); "
        f"baseline {macs} bare HMAC-SHA256: {bare:.2f} s"
    )

    uri = reader_links(SECRET, OPERATOR, readers[0], issued=TODAY).list_unsubscribe.strip("<>")
    big = plain(readers[0], "Re: paper", "see attached\n" + "x" * (5 << 20))
    samples = {
        "gmail unsubscribe": gmail(uri, readers[0]),
        "postfix DSN": (MAIL / "postfix_dsn_user_unknown.eml").read_bytes(),
        "exchange out-of-office": (MAIL / "exchange_automatic_reply.eml").read_bytes(),
        "5 MB message": big,
    }
    for name, raw in samples.items():
        repeat = 5 if len(raw) > 1 << 20 else 200
        took = timed(lambda raw=raw: classify(raw, secret=SECRET), repeat)
        parse = timed(lambda raw=raw: BytesParser(policy=default).parsebytes(raw), repeat)
        print(
            f"classify {name} ({len(raw)} bytes): {took * 1e3:.2f} ms; "
            f"baseline email parse of the whole message: {parse * 1e3:.2f} ms"
        )


if __name__ == "__main__":
    main()
