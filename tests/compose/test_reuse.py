"""Composing reuses per-cycle work across readers without changing a byte of any message.

``tests/golden/day_messages.sha256`` holds the SHA-256 of every message of
the realistic day (tests/support/spam.py), with and without reply links, as
composed without any cache (first at commit 6b0a0f0, before compose cached
anything). A change to what the mail shows changes them on purpose:
``UPDATE_GOLDEN=1`` rewrites the file, and the commit says what changed.
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime

from digest.compose.render import _cycle_headers, build_message, compose, forget_cycle
from digest.compose.view import _paper_text
from digest.models import Settings, SmtpSettings, Subscriber
from tests.support.paths import GOLDEN
from tests.support.spam import day_messages

HASHES = GOLDEN / "day_messages.sha256"


def _golden() -> list[tuple[str, str, str]]:
    rows = [line.split() for line in HASHES.read_text(encoding="ascii").splitlines()]
    return [(kind, email, digest) for kind, email, digest in rows]


def _hashes(links: bool) -> list[tuple[str, str, str]]:
    kind = "links" if links else "nolinks"
    return [
        (kind, email, hashlib.sha256(raw).hexdigest()) for email, raw in day_messages(links=links)
    ]


def test_the_days_messages_are_byte_identical_to_those_composed_before_caching() -> None:
    forget_cycle()  # composed cold, as the hashes were
    hashes = _hashes(True) + _hashes(False)
    if os.environ.get("UPDATE_GOLDEN"):
        HASHES.write_text("".join(" ".join(row) + "\n" for row in hashes), encoding="ascii")
    assert hashes == _golden()


def test_composing_the_day_again_with_warm_caches_gives_the_same_bytes() -> None:
    first = day_messages()
    assert day_messages() == first


def test_a_long_non_ascii_sender_folds_the_same_in_every_message_of_the_cycle() -> None:
    # the cycle's shared header objects are folded once per message: folding must not change them
    sender = "Ça fait des Papiers Quotidiens du Département de Physique Théorique <p@example.org>"
    settings = Settings(smtp=SmtpSettings(sender=sender))
    sub = Subscriber(email="zoe@example.org", keywords=("graph",), send_empty=True)
    created = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
    digest, rendered = compose(sub, (), settings, cycle_id="c", created=created, empty_reason="-")
    _cycle_headers.cache_clear()
    cold = build_message(digest, rendered, settings)
    assert build_message(digest, rendered, settings) == cold
    assert build_message(digest, rendered, settings) == cold


def test_forget_cycle_empties_the_per_cycle_caches() -> None:
    day_messages()
    assert _paper_text.cache_info().currsize > 0
    forget_cycle()
    assert _paper_text.cache_info().currsize == 0
    assert _cycle_headers.cache_info().currsize == 0
