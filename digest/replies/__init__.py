"""Replies to the digest: mail commands, tokens, bounces, reader choices, and the inbox."""

from __future__ import annotations

from digest.replies.commands import ReaderLinks, reader_links
from digest.replies.inbox import POLL_BUDGET, check_login
from digest.replies.mailroom import (
    ingest_one,
    load_secret,
    operator,
    poll_inbox,
    read_message,
    record_refusal,
    reply_context,
    rotate_secret,
    send_replies,
)
from digest.replies.readers import (
    Lifted,
    apply,
    away_windows,
    describe,
    effective_frequency,
    is_suppressed,
    suppression,
)
from digest.replies.tokens import ReplySecret

__all__ = [
    "POLL_BUDGET",
    "Lifted",
    "ReaderLinks",
    "ReplySecret",
    "apply",
    "away_windows",
    "check_login",
    "describe",
    "effective_frequency",
    "ingest_one",
    "is_suppressed",
    "load_secret",
    "operator",
    "poll_inbox",
    "read_message",
    "reader_links",
    "record_refusal",
    "reply_context",
    "rotate_secret",
    "send_replies",
    "suppression",
]
