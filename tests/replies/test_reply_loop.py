"""Replies end to end: real digests out, readers' answers in, the next cycle obeys.

Each test runs real cycles against the loopback arXiv and aiosmtpd servers,
takes the digest the SMTP server received, builds the reader's answer from
that digest's own links the way a mail client does, and hands it to
``digest ingest`` as an MTA pipe would (a subprocess reading stdin), or drops
it into a real Dovecot inbox for the daemon's poller.
"""

from __future__ import annotations

import asyncio
import email
import os
import re
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from digest.cli.entry import main
from digest.config import loading as config_mod
from digest.models import WEEKDAYS
from digest.replies.readers import is_suppressed
from digest.service.daemon import Daemon
from digest.store.store import Store
from tests.support.arxiv_server import ArxivServer
from tests.support.clock import FakeTime
from tests.support.configs import config_dict
from tests.support.daemon import run_in_process
from tests.support.dovecot import BINARY, Dovecot
from tests.support.mail_clients import gmail, outlook, plain
from tests.support.paths import MAIL
from tests.support.reply_site import ALICE, BOB, Site, both_keywords, imap_site, list_unsubscribe
from tests.support.smtp_server import SmtpServer

# the real `digest ingest` and cycles against loopback servers, end to end
pytestmark = pytest.mark.servers


@pytest.fixture
def site(arxiv: ArxivServer, smtp: SmtpServer, write_config) -> Site:
    return Site(write_config(config_dict(arxiv.url, smtp.port)), arxiv, smtp)









def paper_links(msg: EmailMessage, action: str) -> dict[str, str]:
    """paper id -> its "more"/"less" mailto link, read from the text part as a reader sees it."""
    text = msg.get_body(("plain",)).get_content()
    found = re.findall(rf"(mailto:\S+subject={action}%20([\w.]+)%20\S+)", text)
    return {pid: uri for uri, pid in found}


def listed_ids(msg: EmailMessage) -> list[str]:
    """Every paper in the text part, in the order shown (full entries, then compact rows)."""
    text = msg.get_body(("plain",)).get_content()
    found = re.findall(r"^ +(?:Abstract: )?https://arxiv.org/abs/([\w./-]+)", text, re.M)
    return list(dict.fromkeys(found))




# -- digest ingest, from the digest's own links ---------------------------------------------


def test_gmail_unsubscribe_from_a_real_digest_stops_that_reader_only(site: Site) -> None:
    first = site.cycle()
    assert sorted(first) == [ALICE, BOB]
    done = site.ingest(gmail(list_unsubscribe(first[ALICE]), f"Alice <{ALICE}>"))
    assert done.returncode == 0
    assert b"unsubscribed by reply" in done.stderr  # the one log line for the MTA's log
    both_keywords(site)
    second = site.cycle()
    assert list(second) == [BOB]
    assert "unsubscribed_at" in site.state(ALICE) and site.state(BOB) == {}


def test_an_unsubscribe_is_acknowledged_and_the_acknowledgements_link_resumes(
    site: Site,
) -> None:
    first = site.cycle()
    sent = len(site.smtp.received)
    site.ingest(gmail(list_unsubscribe(first[ALICE]), ALICE))
    (acknowledgement,) = site.smtp.received[sent:]
    assert (acknowledgement.mail_from, acknowledgement.rcpt_tos) == ("<>", [ALICE])
    text = acknowledgement.message.get_content()
    resume = re.search(r"mailto:\S+subject=resume%20\S+", text)
    assert resume, text
    site.ingest(gmail(resume.group(0), ALICE, message_id="<CAGresume@gmail.example>"))
    both_keywords(site)
    assert sorted(site.cycle()) == [ALICE, BOB]


def test_a_forwarded_digests_resume_link_asks_its_reader_before_it_acts(site: Site) -> None:
    first = site.cycle()
    site.ingest(gmail(list_unsubscribe(first[ALICE]), ALICE))
    resume = re.search(
        r"mailto:\S+subject=resume%20\S+", first[ALICE].get_body(("plain",)).get_content()
    )
    assert resume
    sent = len(site.smtp.received)
    site.ingest(gmail(resume.group(0), "mallory@example.net", message_id="<CAGfwd@gmail.example>"))
    assert "unsubscribed_at" in site.state(ALICE)
    (confirmation,) = site.smtp.received[sent:]
    assert confirmation.rcpt_tos == [ALICE] and b"mallory@example.net" in confirmation.raw


def test_the_suppressed_reader_is_named_in_the_report_and_in_status(site: Site, capsys) -> None:
    first = site.cycle()
    assert site.ingest(gmail(list_unsubscribe(first[ALICE]), ALICE)).returncode == 0
    both_keywords(site)
    capsys.readouterr()
    site.cycle()
    today = f"{datetime.now(UTC):%Y-%m-%d}"
    err = capsys.readouterr().err
    assert f"{ALICE}: not mailed (unsubscribed by reply on {today})" in err
    assert main(["status", "--config", str(site.cfg)]) == 0
    assert f"unsubscribed by reply on {today}" in capsys.readouterr().out


def test_the_operator_lifts_an_unsubscribe_and_the_reader_is_mailed_again(
    site: Site, capsys
) -> None:
    first = site.cycle()
    site.ingest(gmail(list_unsubscribe(first[ALICE]), ALICE))
    assert main(["readers", "--config", str(site.cfg)]) == 0
    assert f"{ALICE}: unsubscribed by reply on" in capsys.readouterr().out
    assert main(["readers", ALICE, "--resume", "--config", str(site.cfg)]) == 0
    assert "receives mail as configured" in capsys.readouterr().out
    both_keywords(site)
    assert sorted(site.cycle()) == [ALICE, BOB]


def test_a_replayed_unsubscribe_does_not_undo_the_operators_lifting(site: Site) -> None:
    first = site.cycle()
    unsubscribe = gmail(list_unsubscribe(first[ALICE]), ALICE)
    site.ingest(unsubscribe)
    assert main(["readers", ALICE, "--resume", "--config", str(site.cfg)]) == 0
    assert site.ingest(unsubscribe).returncode == 0
    assert not is_suppressed(site.reader(ALICE), datetime.now(UTC))


def test_the_pause_and_weekly_footer_links_of_a_real_digest_act(site: Site) -> None:
    first = site.cycle()
    text = first[ALICE].get_body(("plain",)).get_content()
    pause = re.search(r"mailto:\S+subject=pause%20\S+", text)
    weekly = re.search(r"mailto:\S+subject=weekly%20\S+", text)
    assert pause and weekly
    assert site.ingest(outlook(pause.group(0), ALICE)).returncode == 0
    # a second message of its own (Outlook's builder reuses one Message-ID)
    assert site.ingest(gmail(weekly.group(0), ALICE)).returncode == 0
    state = site.state(ALICE)
    assert state["frequency"] == "weekly" and "paused_until" in state
    both_keywords(site)
    assert list(site.cycle()) == [BOB]


def test_more_like_this_moves_similar_papers_up_in_the_next_digest(site: Site) -> None:
    liked = site.new_paper(
        "Proton radius from muonic hydrogen spectroscopy",
        "Lamb shift spectroscopy of muonic hydrogen gives the proton charge radius; "
        "muonic hydrogen lamb shift laser spectroscopy radius puzzle.",
    )
    first = site.cycle()
    assert liked in listed_ids(first[ALICE])
    more = paper_links(first[ALICE], "more")[liked]
    assert site.ingest(gmail(more, ALICE)).returncode == 0
    assert site.state(ALICE)["likes"] == [liked]
    # two new proton papers: the unrelated one is newer, so it came first before
    similar = site.new_paper(
        "Muonic hydrogen Lamb shift and the proton radius puzzle",
        "New laser spectroscopy of the Lamb shift in muonic hydrogen and the proton radius.",
        minutes_ago=3,
    )
    other = site.new_paper(
        "Proton therapy dose planning for paediatric tumours",
        "Clinical proton beam therapy planning in hospitals for children with tumours.",
        minutes_ago=1,
    )
    ids = listed_ids(site.cycle()[ALICE])
    assert ids.index(similar) < ids.index(other)


def test_less_like_this_records_a_dislike_and_drops_the_like(site: Site) -> None:
    first = site.cycle()
    some = listed_ids(first[ALICE])[0]
    site.ingest(gmail(paper_links(first[ALICE], "more")[some], ALICE))
    site.ingest(
        gmail(paper_links(first[ALICE], "less")[some], ALICE, message_id="<CAGless@gmail.example>")
    )
    state = site.state(ALICE)
    assert state.get("likes", []) == [] and state["dislikes"] == [some]


# -- bounces ----------------------------------------------------------------------------------


def dsn(original: EmailMessage, recipient: str, n: int) -> bytes:
    """A Postfix-style DSN returning ``original``'s headers: what the reader's MX sends back."""
    headers = "".join(f"{k}: {v}\n" for k, v in original.items() if k != "List-Unsubscribe")
    headers += f"List-Unsubscribe: {original['List-Unsubscribe']}\n"
    return (
        "Return-Path: <>\n"
        "From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\n"
        f"To: {original['From']}\n"
        "Subject: Undelivered Mail Returned to Sender\n"
        f"Message-ID: <bounce.{n}@mx.example.org>\n"
        "Auto-Submitted: auto-replied\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n'
        "\n--B\nContent-Type: text/plain\n\n"
        f"<{recipient}>: host mx.example.org said: 550 5.1.1 User unknown\n"
        "\n--B\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx.example.org\n\n"
        f"Final-Recipient: rfc822; {recipient}\nAction: failed\nStatus: 5.1.1\n"
        "Diagnostic-Code: smtp; 550 5.1.1 User unknown\n"
        f"\n--B\nContent-Type: text/rfc822-headers\n\n{headers}\n--B--\n"
    ).encode()


def test_three_hard_bounces_of_real_digests_suspend_the_reader(site: Site, capsys) -> None:
    first = site.cycle()
    for n in range(3):
        assert site.ingest(dsn(first[ALICE], ALICE, n)).returncode == 0
    assert "suspended_at" in site.state(ALICE)
    both_keywords(site)
    assert list(site.cycle()) == [BOB]
    capsys.readouterr()
    main(["status", "--config", str(site.cfg)])
    assert "after 3 hard bounces in 30 days" in capsys.readouterr().out


def test_smtp_refusals_during_cycles_count_as_hard_bounces(site: Site) -> None:
    site.smtp.behaviour.refuse[ALICE] = "550 5.1.1 <alice@example.org>: User unknown"
    for _ in range(3):
        both_keywords(site)
        main(["once", "--config", str(site.cfg)])  # 75: one reader was refused
    assert "suspended_at" in site.state(ALICE)
    del site.smtp.behaviour.refuse[ALICE]
    both_keywords(site)
    assert list(site.cycle()) == [BOB]


def test_a_policy_refusal_is_not_a_bounce(site: Site) -> None:
    site.smtp.behaviour.refuse[ALICE] = "554 5.7.1 Message rejected as spam"
    main(["once", "--config", str(site.cfg)])
    assert site.state(ALICE) == {}


# -- what changes nothing and answers nothing ---------------------------------------------


def tampered(site: Site, first: dict[str, EmailMessage], how: str) -> bytes:
    uri = list_unsubscribe(first[ALICE])
    if how == "forged token":
        token = uri.rsplit("%20", 1)[1]
        return gmail(uri.replace(token, "A" * len(token)), ALICE)
    if how == "address changed":
        return gmail(uri.replace("alice%40example.org", "bob%40example.org"), BOB)
    if how == "token moved to another action":
        return gmail(uri.replace("subject=unsubscribe", "subject=pause"), ALICE)
    if how == "out of office":
        raw = (MAIL / "gmail_vacation_responder.eml").read_bytes()
        return re.sub(rb"(?m)^From: .*$", f"From: {ALICE}".encode(), raw, count=1)
    if how == "bounce for a stranger":
        # a real Postfix DSN for bob@example.com, who is no subscriber here
        return (MAIL / "postfix_dsn_user_unknown.eml").read_bytes()
    if how == "huge":
        head = f"From: {ALICE}\nSubject: Re: Daily Papers\n\n".encode()
        return head + (b"x" * 998 + b"\n") * 30_000  # 30 MB
    if how == "malformed":
        return (MAIL / "truncated_mime.eml").read_bytes() + b"\x00\xff" * 100
    if how == "binary noise":
        return os.urandom(4096)
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how",
    [
        "token moved to another action",
        "out of office",
        "bounce for a stranger",
        "huge",
        "malformed",
        "binary noise",
    ],
)
def test_a_message_that_proves_nothing_changes_nothing_and_is_not_answered(
    site: Site, how: str
) -> None:
    first = site.cycle()
    sent = len(site.smtp.received)
    done = site.ingest(tampered(site, first, how))
    assert done.returncode == 0, done.stderr
    assert b"Traceback" not in done.stderr
    assert site.choices() == {}
    # at most, what a person wrote goes to the owner (the postmaster by default)
    assert all(r.rcpt_tos == ["postmaster@digest.test"] for r in site.smtp.received[sent:])


@pytest.mark.parametrize(("how", "reader"), [("forged token", ALICE), ("address changed", BOB)])
def test_an_unsubscribe_no_key_signed_changes_nothing_but_asks_the_reader_it_names(
    site: Site, how: str, reader: str
) -> None:
    first = site.cycle()
    sent = len(site.smtp.received)
    assert site.ingest(tampered(site, first, how)).returncode == 0
    (confirmation,) = site.smtp.received[sent:]
    assert (confirmation.mail_from, confirmation.rcpt_tos) == ("<>", [reader])
    assert not is_suppressed(site.reader(reader), datetime.now(UTC))


def test_a_reply_digest_does_not_understand_reaches_the_owner(
    arxiv: ArxivServer, smtp: SmtpServer, write_config
) -> None:
    site = Site(
        write_config(config_dict(arxiv.url, smtp.port, owner="ops@example.net")), arxiv, smtp
    )
    site.cycle()
    sent = len(smtp.received)
    raw = plain(ALICE, "Re: Daily Papers", "Please take me off this list, too much mail.")
    assert site.ingest(raw).returncode == 0
    (forward,) = smtp.received[sent:]
    assert (forward.mail_from, forward.rcpt_tos) == ("<>", ["ops@example.net"])
    assert b"Please take me off this list" in forward.raw


def test_a_plain_reply_gets_one_confirmation_with_the_null_sender(site: Site) -> None:
    site.cycle()
    sent = len(site.smtp.received)
    done = site.ingest(plain(ALICE, "unsubscribe", "unsubscribe", to="papers@digest.test"))
    assert done.returncode == 0
    confirmation = site.smtp.received[sent:]
    assert [(r.mail_from, r.rcpt_tos) for r in confirmation] == [("<>", [ALICE])]
    assert "unsubscribed_at" not in site.state(ALICE)  # a From proves nothing


def test_ingest_while_a_cycle_holds_the_database_exits_75_and_loses_nothing(site: Site) -> None:
    first = site.cycle()
    unsubscribe = gmail(list_unsubscribe(first[ALICE]), ALICE)
    with Store.open(site.db):  # what the daemon holds during a cycle
        busy = site.ingest(unsubscribe)
    assert busy.returncode == 75 and b"Traceback" not in busy.stderr
    assert site.state(ALICE) == {}
    assert site.ingest(unsubscribe).returncode == 0  # the MTA's retry
    assert "unsubscribed_at" in site.state(ALICE)


def test_ingest_with_a_broken_config_exits_75_not_a_bounce(site: Site) -> None:
    site.cfg.write_text("settings: [", encoding="utf-8")
    done = site.ingest(plain(ALICE, "unsubscribe", "unsubscribe"))
    assert done.returncode == 75 and b"Traceback" not in done.stderr


def test_after_switching_to_the_credential_old_digests_still_unsubscribe(
    site: Site, tmp_path: Path
) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "reply-secret").write_text("a-credential-secret-of-enough-length\n")
    env = {"CREDENTIALS_DIRECTORY": str(creds)}
    first = site.cycle()  # links signed with the file beside the database
    done = site.ingest(gmail(list_unsubscribe(first[ALICE]), ALICE), env=env)
    assert done.returncode == 0 and "unsubscribed_at" in site.state(ALICE)


def test_after_secret_rotate_old_digests_unsubscribe_and_ask_before_anything_else(
    site: Site,
) -> None:
    first = site.cycle()
    assert main(["secret", "rotate", "--config", str(site.cfg)]) == 0
    site.ingest(gmail(list_unsubscribe(first[ALICE]), ALICE))
    assert "unsubscribed_at" in site.state(ALICE)
    pause = re.search(
        r"mailto:\S+subject=pause%20\S+", first[BOB].get_body(("plain",)).get_content()
    )
    assert pause
    sent = len(site.smtp.received)
    site.ingest(gmail(pause.group(0), BOB, message_id="<CAGpause@gmail.example>"))
    assert not is_suppressed(site.reader(BOB), datetime.now(UTC))
    (confirmation,) = site.smtp.received[sent:]
    assert confirmation.rcpt_tos == [BOB] and "confirm" in str(confirmation.message["Subject"])


def test_an_unsubscribe_from_a_digest_whose_key_is_lost_asks_its_reader(site: Site) -> None:
    first = site.cycle()
    for name in ("reply-secret", "reply-secret.retired"):
        (site.db.parent / name).unlink(missing_ok=True)
    sent = len(site.smtp.received)
    site.ingest(gmail(list_unsubscribe(first[ALICE]), ALICE))
    (confirmation,) = site.smtp.received[sent:]
    assert confirmation.rcpt_tos == [ALICE] and "confirm" in str(confirmation.message["Subject"])


# -- the IMAP path, through the daemon ---------------------------------------------------------


needs_dovecot = pytest.mark.skipif(not BINARY.exists(), reason=f"{BINARY} is missing")




@needs_dovecot
def test_an_unsubscribe_in_the_imap_inbox_stops_the_next_cycles_mail_to_that_reader(
    arxiv: ArxivServer, smtp: SmtpServer, write_config, dovecot: Dovecot, monkeypatch
) -> None:
    fake = FakeTime(datetime.now(UTC))
    slot = fake.now + timedelta(hours=1)
    site, folder = imap_site(
        arxiv, smtp, write_config, dovecot, send_at=f"{slot:%H:%M:%S}", days=list(WEEKDAYS)
    )
    monkeypatch.setenv("DIGEST_IMAP_PASSWORD", dovecot.password)
    first = site.cycle()
    dovecot.append(folder, gmail(list_unsubscribe(first[ALICE]), ALICE))
    sent = len(smtp.received)
    added: list[bool] = []

    def until() -> bool:
        # once the poll has handled the unsubscribe, a paper both readers follow appears
        if not added and "unsubscribed_at" in site.state(ALICE):
            both_keywords(site)
            added.append(True)
        return fake.now > slot + timedelta(minutes=10)

    env = {"DIGEST_IMAP_PASSWORD": dovecot.password}
    assert run_in_process(site.cfg, fake, until, timedelta(hours=2), env) == 0
    assert added, "the daemon never polled the inbox"
    # alice hears that it worked, and is sent no digest
    acknowledgement, digest = smtp.received[sent:]
    assert (acknowledgement.mail_from, acknowledgement.rcpt_tos) == ("<>", [ALICE])
    assert digest.rcpt_tos == [BOB]
    assert dovecot.contents(folder) == [] and len(dovecot.contents(f"{folder}-done")) == 1


@needs_dovecot
def test_the_daemon_answers_a_plain_reply_in_the_inbox_with_the_null_sender(
    arxiv: ArxivServer, smtp: SmtpServer, write_config, dovecot: Dovecot, monkeypatch
) -> None:
    site, folder = imap_site(arxiv, smtp, write_config, dovecot)
    monkeypatch.setenv("DIGEST_IMAP_PASSWORD", dovecot.password)
    site.cycle()
    sent = len(smtp.received)
    dovecot.append(folder, plain(ALICE, "pause", "pause", to="papers@digest.test"))
    daemon = Daemon(site.cfg, env={"DIGEST_IMAP_PASSWORD": dovecot.password}, notify=bool)
    daemon.config = config_mod.load(site.cfg, daemon.env)
    asyncio.run(daemon._maybe_poll())
    assert [(r.mail_from, r.rcpt_tos) for r in smtp.received[sent:]] == [("<>", [ALICE])]
    assert daemon.next_poll is not None  # the next poll is poll_interval away


def test_the_confirmation_is_not_a_digest_and_parses(site: Site) -> None:
    site.cycle()
    sent = len(site.smtp.received)
    site.ingest(plain(ALICE, "pause", "pause"))
    msg = email.message_from_bytes(site.smtp.received[sent].raw, policy=policy.default)
    assert msg["Auto-Submitted"] == "auto-replied" and "confirm" in str(msg["Subject"])


def test_a_confirmation_looped_back_to_us_is_not_answered(site: Site) -> None:
    site.cycle()
    sent = len(site.smtp.received)
    site.ingest(plain(ALICE, "pause", "pause", to="papers@digest.test"))
    (confirmation,) = site.smtp.received[sent:]
    # an auto-forward or a misconfigured alias sends it straight back
    assert site.ingest(confirmation.raw).returncode == 0
    assert len(site.smtp.received) == sent + 1
