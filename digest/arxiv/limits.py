"""How long and how large one arXiv answer may be (pure).

Nothing that comes from arXiv is trusted to end by itself: httpx's timeout
bounds each wait for a byte, not the whole answer, so a server sending one
byte a second never trips it.
"""

from __future__ import annotations

# Each wait (connect, headers, every read) gets ``settings.arxiv.timeout``;
# the whole answer gets this many of them: one to connect and hear the
# headers, the rest for the body. An ordinary page of 1000 entries (~2.5 MB)
# arrives in seconds; arXiv's manual says its largest answers (30000
# results, ~15 MB) took about 2 minutes, which 4 x the default 30 s covers.
DEADLINE_FACTOR = 4


def answer_deadline(timeout: float) -> float:
    """Seconds one request may take from sending it to the last byte of its answer."""
    return DEADLINE_FACTOR * timeout
