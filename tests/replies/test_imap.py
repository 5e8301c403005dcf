"""The IMAP protocol without a socket: folder names, SEARCH and FETCH answers (pure)."""

from __future__ import annotations

from digest.replies.imap import mailbox_name, parse_body, parse_search


def test_mailbox_name_quotes_and_uses_modified_utf7() -> None:
    assert mailbox_name("INBOX") == '"INBOX"'
    assert mailbox_name("Entwürfe") == '"Entw&APw-rfe"'  # RFC 3501 §5.1.3 style
    assert mailbox_name("A&B") == '"A&-B"'
    assert mailbox_name('say "hi"\\') == '"say \\"hi\\"\\\\"'
    assert mailbox_name("台北") == '"&U,BTFw-"'  # RFC 3501's own example


def test_parse_search_skips_unrelated_responses() -> None:
    assert parse_search([b"3 4 17"]) == (3, 4, 17)
    assert parse_search([None]) == ()


def test_parse_body_checks_the_uid() -> None:
    data = [(b"1 (UID 4 BODY[] {3}", b"abc"), b")", (b"2 (UID 9 BODY[] {3}", b"xyz"), b")"]
    assert parse_body(data, 9) == b"xyz"
    assert parse_body(data, 7) is None
    assert parse_body([None], 4) is None


