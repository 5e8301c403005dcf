"""One reader, one identity: how addresses are compared, by the config, the store and the tokens.

The rule (``digest.models.address_key``): the domain in U-labels, mapped and
lower-cased by UTS #46; the local part in NFC and lower-cased. The address
is still sent as written; these tests are about which spellings are one reader.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.config.loading import parse
from digest.errors import ConfigError
from digest.replies.tokens import ReplySecret, command_token, normalise_address, verify
from digest.store.storage import MemoryStorage
from digest.store.store import Store

SECRET = ReplySecret(b"0123456789abcdef0123")
NOW = datetime(2026, 12, 1, 7, tzinfo=UTC)

# spellings of one mailbox: case, Unicode or A-label domains, composed or decomposed letters
ONE_READER = [
    ("Alice@Example.org", "alice@example.org"),
    ("user@bücher.example", "USER@xn--bcher-kva.example"),
    ("user@BÜCHER.example", "user@XN--BCHER-KVA.EXAMPLE"),
    ("Jörg@example.org", "jörg@EXAMPLE.ORG"),
    ("Jo\u0308rg@example.org", "jörg@example.org"),  # NFD and NFC
    ("ЮЛИЯ@пример.рф", "юлия@xn--e1afmkfd.xn--p1ai"),
]
TWO_READERS = [
    ("straße@example.org", "strasse@example.org"),  # different mailboxes (no casefold)
    ("user@bücher.example", "user@bucher.example"),
    ("a+b@example.org", "a@example.org"),
]


def subscribers_yaml(*emails: str) -> str:
    lines = ["subscribers:"]
    for e in emails:
        lines += [f'  - email: "{e}"', "    keywords: [compiler]"]
    return "\n".join(lines) + "\n"


def are_duplicates(a: str, b: str) -> bool:
    try:
        parse(subscribers_yaml(a, b), Path("subscribers.yaml"), {})
    except ConfigError as exc:
        assert all("is already subscribers[0]" in p for p in exc.problems), exc
        return True
    return False


def one_record(a: str, b: str) -> bool:
    with Store.open(Path("mem.json"), storage=MemoryStorage()) as store:
        store.record_delivery(a, {"2611.00001": 1}, NOW)
        return dict(store.subscriber(b).delivered) == {"2611.00001": 1}


def one_token(a: str, b: str) -> bool:
    day = NOW.date()
    return command_token(SECRET, a, "unsubscribe", issued=day) == command_token(
        SECRET, b, "unsubscribe", issued=day
    )


@pytest.mark.parametrize(("a", "b"), ONE_READER)
def test_spellings_of_one_mailbox_are_one_reader_everywhere(a: str, b: str) -> None:
    assert are_duplicates(a, b)
    assert one_record(a, b)
    assert one_token(a, b)
    assert normalise_address(f" <{a}> ") == normalise_address(b)


@pytest.mark.parametrize(("a", "b"), TWO_READERS)
def test_different_mailboxes_are_different_readers_everywhere(a: str, b: str) -> None:
    assert not are_duplicates(a, b)
    assert not one_record(a, b)
    assert not one_token(a, b)


_LOCAL = st.sampled_from(["alice", "Alice", "ALICE", "jörg", "JÖRG", "straße", "STRASSE"])
_DOMAIN = st.sampled_from(
    ["example.org", "EXAMPLE.org", "bücher.example", "xn--bcher-kva.example", "BÜCHER.example"]
)


@settings(max_examples=60, deadline=None)
@given(a=st.tuples(_LOCAL, _DOMAIN), b=st.tuples(_LOCAL, _DOMAIN))
def test_the_config_the_store_and_the_tokens_never_disagree(
    a: tuple[str, str], b: tuple[str, str]
) -> None:
    x, y = "@".join(a), "@".join(b)
    assert are_duplicates(x, y) == one_record(x, y) == one_token(x, y)


def test_tokens_already_mailed_to_ascii_and_unicode_addresses_still_verify() -> None:
    # undated tokens minted before addresses had one identity (and before tokens
    # carried their day): every spelling of the mailbox still verifies them
    mailed = [
        ("Alice@Example.org", "unsubscribe", "KGW6SCME4YRIDNEERW62UQLMGI"),
        ("Jörg@example.org", "pause", "MFM4PR5U7EW2SYUGT3PO4R5NAQ"),
        ("user@bücher.example", "unsubscribe", "E2XQDWWDADTBS3OHOIN6S6BIPA"),
    ]
    for address, action, token in mailed:
        for spelling in (address, address.lower(), address.upper()):
            assert verify(SECRET, spelling, action, "", token) is not None, (spelling, action)
