"""Command lines and mailto links: what a digest carries and a reply sends back."""

from __future__ import annotations

from datetime import date
from email import message_from_bytes
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, default
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.replies.commands import (
    DESCRIPTIONS,
    CommandLine,
    UnfoldedHeader,
    command_line,
    command_mailto,
    find_commands,
    mailto,
    reader_links,
)
from digest.replies.tokens import ReplySecret, command_token
from tests.support.mail_clients import open_mailto

SECRET = ReplySecret(b"test-secret-0123456789abcdef")
OPERATOR = Address("Daily Papers", "papers", "digest.example.org")
DAY = date(2026, 12, 3)


def test_mailto_encodes_space_as_percent_20_never_plus() -> None:
    uri = mailto(OPERATOR, subject="a b+c")
    assert uri == "mailto:papers@digest.example.org?subject=a%20b%2Bc"


def test_mailto_body_line_breaks_are_crlf() -> None:
    assert mailto("x@example.org", subject="s", body="one\ntwo").endswith("body=one%0D%0Atwo")


def test_mailto_escapes_reserved_characters_in_the_address() -> None:
    uri = mailto("odd%name?x@example.org", subject="s")
    assert uri.startswith("mailto:odd%25name%3Fx@example.org?")


@given(st.text(max_size=80), st.text(max_size=200))
def test_a_client_decoding_the_mailto_gets_subject_and_body_back(subject: str, body: str) -> None:
    link = open_mailto(mailto(OPERATOR, subject=subject, body=body))
    assert link.to == "papers@digest.example.org"
    assert link.subject == subject
    normalised = body.replace("\r", "").replace("\n", "\r\n")
    assert link.body == normalised


def test_list_unsubscribe_is_a_bracketed_mailto_to_the_operator() -> None:
    links = reader_links(SECRET, OPERATOR, "alice@example.org", issued=DAY)
    token = command_token(SECRET, "alice@example.org", "unsubscribe", issued=DAY)
    assert links.list_unsubscribe == (
        f"<mailto:papers@digest.example.org?subject=unsubscribe%20alice%40example.org%20{token}>"
    )


def test_list_unsubscribe_survives_smtp_flattening_unfolded_and_unencoded() -> None:
    # aiosmtplib flattens every EmailMessage with email.policy.SMTP (78-column folding).
    header = reader_links(SECRET, OPERATOR, "a.rather.long.name@department.example.org", issued=DAY)
    msg = EmailMessage()
    msg["List-Unsubscribe"] = header.list_unsubscribe
    msg.set_content("x")
    raw = msg.as_bytes(policy=SMTP)
    assert f"List-Unsubscribe: {header.list_unsubscribe}\r\n".encode() in raw
    assert message_from_bytes(raw, policy=default)["List-Unsubscribe"] == header.list_unsubscribe


def test_an_unfolded_header_refuses_line_breaks() -> None:
    with pytest.raises(ValueError):
        UnfoldedHeader("List-Unsubscribe", "<mailto:x@example.org>\r\nBcc: victim@example.org")


def test_the_unsubscribe_link_carries_the_command_line_in_subject_and_body() -> None:
    link = open_mailto(reader_links(SECRET, OPERATOR, "alice@example.org", issued=DAY).unsubscribe)
    token = command_token(SECRET, "alice@example.org", "unsubscribe", issued=DAY)
    assert link.subject == f"unsubscribe alice@example.org {token}"
    assert link.subject in link.body


def test_each_paper_gets_its_own_more_and_less_links() -> None:
    links = reader_links(
        SECRET, OPERATOR, "alice@example.org", ("2202.12139", "astro-ph/9904306"), issued=DAY
    )
    more = open_mailto(links.paper("astro-ph/9904306").more)
    less = open_mailto(links.papers["2202.12139"].less)
    assert more.subject.startswith("more astro-ph/9904306 alice@example.org ")
    assert less.subject.startswith("less 2202.12139 alice@example.org ")


def test_find_commands_reads_back_what_command_line_writes() -> None:
    line = command_line(SECRET, "alice@example.org", "more", "2202.12139", issued=DAY)
    (found,) = find_commands(f"Re: {line}")
    token = command_token(SECRET, "alice@example.org", "more", "2202.12139", issued=DAY)
    assert found == CommandLine("more", "alice@example.org", "2202.12139", token)


def test_find_commands_survives_a_line_wrapped_by_the_client() -> None:
    line = command_line(SECRET, "alice@example.org", "more", "astro-ph/9904306", issued=DAY)
    assert find_commands(line.replace(" alice", "\n alice"))


def test_a_percent_encoded_link_quoted_in_a_reply_is_not_a_command() -> None:
    line = command_line(SECRET, "alice@example.org", "unsubscribe", issued=DAY)
    quoted = f"> Unsubscribe: mailto:papers@digest.example.org?subject={quote(line, safe='')}"
    assert find_commands(quoted) == ()


def test_a_paper_command_without_a_paper_is_not_a_command() -> None:
    token = command_token(SECRET, "alice@example.org", "more", issued=DAY)
    assert find_commands(f"more alice@example.org {token}") == ()


def test_command_line_refuses_an_unknown_action() -> None:
    with pytest.raises(ValueError):
        command_line(SECRET, "alice@example.org", "delete", issued=DAY)  # type: ignore[arg-type]


def test_command_line_refuses_a_paper_id_with_spaces() -> None:
    with pytest.raises(ValueError):
        command_line(SECRET, "alice@example.org", "more", "2202.12139 pause", issued=DAY)


def test_command_mailto_body_says_what_sending_it_does() -> None:
    uri = command_mailto(SECRET, OPERATOR, "alice@example.org", "pause", issued=DAY)
    assert "pause mail to alice@example.org for a week" in open_mailto(uri).body


@pytest.mark.parametrize(
    ("address", "action", "argument"),
    [
        ("Alice@Example.org", "unsubscribe", ""),
        ("o'brien+papers@example.org", "more", "astro-ph/9904306"),
        ("jürgen@universität.example", "less", "2202.12139"),
    ],
)
def test_command_mailto_equals_the_general_mailto(address: str, action: str, argument: str) -> None:
    line = command_line(SECRET, address, action, argument, issued=DAY)  # type: ignore[arg-type]
    what = DESCRIPTIONS[action].format(address=address.lower(), argument=argument)  # type: ignore[index]
    body = f"Send this message as it is to {what} (Lab Papers).\n\n{line}\n"
    expected = mailto(OPERATOR, subject=line, body=body)
    got = command_mailto(
        SECRET, OPERATOR, address, action, argument, list_name="Lab Papers", issued=DAY
    )  # type: ignore[arg-type]
    assert got == expected


def test_paper_links_carry_the_command_in_the_subject_only() -> None:
    # two under every paper: the explaining body would double their weight in the HTML
    links = reader_links(SECRET, OPERATOR, "alice@example.org", ("2202.12139",), issued=DAY)
    more = open_mailto(links.paper("2202.12139").more)
    token = command_token(SECRET, "alice@example.org", "more", "2202.12139", issued=DAY)
    assert (more.subject, more.body) == (f"more 2202.12139 alice@example.org {token}", "")


def test_an_id_no_command_can_carry_gets_no_links_and_breaks_nothing() -> None:
    hostile = '2611.70004v1"><script>alert(6)</script>'
    links = reader_links(SECRET, OPERATOR, "alice@example.org", ("2202.12139", hostile), issued=DAY)
    assert list(links.papers) == ["2202.12139"]
