"""The cycle: fetch, plan, compose, deliver, record, housekeeping, end to end.

Real cycles against a loopback arXiv and a real aiosmtpd: through ``digest
once`` (what an operator runs) and through ``run_cycle`` with an injected
clock for the weekly cadence, revisions, send_empty and per-subscriber limits
(the arXiv server hands out made-up entries dated relative to those instants).
"""

from __future__ import annotations

import asyncio
import email
import json
import re
import time
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path
from typing import Any

import pytest
import yaml

from digest.arxiv import last_announced
from digest.cli.entry import main
from digest.config import loading as config_mod
from digest.cycle import pool as pool_mod
from digest.cycle.inputs import Options, collaborators
from digest.cycle.report import CycleReport
from digest.cycle.run import run_cycle
from digest.matching.rules import contains_phrase
from digest.store.store import Store
from tests.support.arxiv_server import ArxivServer, make_entry, recent_entries
from tests.support.configs import CORPUS, config_dict
from tests.support.cycles import delivered, once
from tests.support.smtp_server import SmtpServer

HOSTILE = '<script>alert(1)</script> & <img src=x onerror=alert(2)> "q"'


def run(cfg: Path, *args: str) -> int:
    return main([args[0], "--config", str(cfg), *args[1:]])




def listed_ids(msg: email.message.EmailMessage) -> list[str]:
    return ids_in(msg)






@pytest.fixture
def setup(arxiv: ArxivServer, smtp: SmtpServer, write_config):
    cfg = write_config(config_dict(arxiv.url, smtp.port))
    return cfg, arxiv, smtp


# -- digest once ------------------------------------------------------------------


def test_one_digest_per_subscriber_with_exactly_the_matching_papers(setup, capsys) -> None:
    cfg, arxiv, smtp = setup
    assert run(cfg, "once") == 0
    by_rcpt = {r.rcpt_tos[0]: r.message for r in smtp.received}
    assert sorted(by_rcpt) == ["alice@example.org", "bob@example.org"]
    # the server returned all 30 recorded papers for every query; only true matches go out
    from digest.arxiv.feed import parse_page

    header, entries = recent_entries(CORPUS)
    papers = {p.id: p for p in parse_page(header + b"".join(entries) + b"</feed>").papers}
    keywords = {
        "alice@example.org": ["deep learning", "proton"],
        "bob@example.org": ["metamorphic testing", "electron"],
    }
    for rcpt, msg in by_rcpt.items():
        ids = listed_ids(msg)
        assert len(ids) == len(set(ids)) > 0
        expected = {
            pid
            for pid, p in papers.items()
            if any(
                contains_phrase(p.title, k) or contains_phrase(p.abstract, k)
                for k in keywords[rcpt]
            )
        }
        assert set(ids) == expected
        assert msg["Subject"].startswith(f"{len(ids)} new arXiv papers:")
        html = msg.get_body(("html",)).get_content()
        assert len(html.encode()) < 100_000 and "$" not in msg.get_body(("plain",)).get_content()
    err = capsys.readouterr().err
    assert "alice@example.org: sent" in err and "bob@example.org: sent" in err
    assert arxiv.state.requests and all(
        r.params["search_query"].startswith("(ti:") for r in arxiv.state.requests
    )


def test_a_second_run_right_after_sends_nothing(setup) -> None:
    cfg, _, smtp = setup
    assert run(cfg, "once") == 0
    first = len(smtp.received)
    assert run(cfg, "once") == 0
    assert len(smtp.received) == first


def test_a_cycle_that_mails_splits_its_time_into_phases_that_do_not_overlap(setup) -> None:
    cfg, _, smtp = setup
    started = time.perf_counter()
    report = once(cfg)
    wall = time.perf_counter() - started
    assert len(smtp.received) == 2
    phases = ("fetch", "match", "plan", "compose", "send", "record", "housekeeping")
    assert sorted(report.timings) == sorted(phases)
    # composed in this process, inside delivery: no moment is charged to two phases
    assert sum(report.timings.values()) <= wall


def test_the_pool_of_processes_composes_the_same_mail_as_this_process(
    setup, write_config, monkeypatch
) -> None:
    """Many readers are composed by other processes; what they make is what one would."""
    cfg, arxiv, smtp = setup
    now = datetime.now(UTC)
    here = once(cfg, now=now)
    composed_here = {r.rcpt_tos[0]: r.raw for r in smtp.received}
    smtp.received.clear()
    pooled_cfg = write_config(
        config_dict(arxiv.url, smtp.port, database="pooled.json"), name="pooled.yaml"
    )
    pools: list[int] = []
    real_pool = pool_mod.pooled

    def counted(*args: Any, **kwargs: Any) -> Any:
        pools.append(1)
        return real_pool(*args, **kwargs)

    monkeypatch.setattr(pool_mod, "workers_for", lambda messages: 2)
    monkeypatch.setattr(pool_mod, "pooled", counted)
    pooled = once(pooled_cfg, now=now)
    assert pools == [1]
    assert {r.rcpt_tos[0]: r.raw for r in smtp.received} == composed_here
    assert [(r.email, r.status, r.titles) for r in pooled.subscribers] == [
        (r.email, r.status, r.titles) for r in here.subscribers
    ]
    assert pooled.timings["compose"] > 0 and "send" in pooled.timings


def test_refused_subscriber_stays_pending_and_goes_out_exactly_once_later(setup, capsys) -> None:
    cfg, _, smtp = setup
    smtp.behaviour.refuse["alice@example.org"] = "550 5.1.1 Mailbox unavailable"
    assert run(cfg, "once") == 75
    assert [r.rcpt_tos for r in smtp.received] == [["bob@example.org"]]
    state = delivered(cfg)
    assert state["alice@example.org"] == {} and state["bob@example.org"]
    assert "alice@example.org: refused by the server" in capsys.readouterr().err
    del smtp.behaviour.refuse["alice@example.org"]
    assert run(cfg, "once") == 0
    assert [r.rcpt_tos for r in smtp.received] == [["bob@example.org"], ["alice@example.org"]]
    assert run(cfg, "once") == 0
    assert len(smtp.received) == 2


def test_421_mid_batch_loses_and_duplicates_nothing_across_cycles(arxiv, write_config) -> None:
    subs = [{"email": f"u{i}@example.org", "keywords": ["proton"]} for i in range(5)]
    with SmtpServer() as smtp:
        cfg = write_config(config_dict(arxiv.url, smtp.port, subs))
        smtp.behaviour.close_after = 2
        smtp.behaviour.close_always = True
        assert once(cfg).exit_code == 75
        assert len(smtp.received) == 2
        smtp.behaviour.close_after = None
        assert once(cfg).exit_code == 0
        assert once(cfg).exit_code == 0
    rcpts = sorted(r.rcpt_tos[0] for r in smtp.received)
    assert rcpts == [f"u{i}@example.org" for i in range(5)]  # each exactly once
    ids = {tuple(sorted(listed_ids(r.message))) for r in smtp.received}
    assert len(ids) == 1  # everyone got the same papers


def test_smtp_down_exits_75_and_keeps_everything_pending(arxiv, write_config) -> None:
    cfg = write_config(config_dict(arxiv.url, 9))
    report = once(cfg)
    assert report.exit_code == 75
    assert delivered(cfg) == {"alice@example.org": {}, "bob@example.org": {}}
    assert [r.status for r in report.subscribers] == ["deferred", "deferred"]
    assert "cannot connect to 127.0.0.1:9" in report.subscribers[0].line()


def test_hostile_paper_fields_are_escaped_in_the_received_mail(arxiv, smtp, write_config) -> None:
    arxiv.state.entries.insert(
        0,
        make_entry(
            "2611.99999",
            f"Proton {HOSTILE}",
            f"A proton study. {HOSTILE}",
            authors=(HOSTILE, "B. Author"),
            comment=HOSTILE,
            published=datetime.now(UTC) - timedelta(minutes=5),
        ),
    )
    cfg = write_config(config_dict(arxiv.url, smtp.port))
    assert run(cfg, "once") == 0
    msg = next(r.message for r in smtp.received if r.rcpt_tos == ["alice@example.org"])
    html = msg.get_body(("html",)).get_content()
    assert "2611.99999" in html
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_dry_run_prints_what_would_be_sent_and_records_nothing(setup, capsys) -> None:
    cfg, _, smtp = setup
    assert run(cfg, "once", "--dry-run") == 0
    captured = capsys.readouterr()
    assert "alice@example.org: would send" in captured.err
    titles = [line[4:] for line in captured.out.splitlines() if line.startswith("  - ")]
    assert titles
    assert smtp.received == []
    assert not (cfg.parent / "digest.json").exists()


def test_outbox_writes_eml_files_and_records_them(setup) -> None:
    cfg, _, smtp = setup
    outbox = cfg.parent / "outbox"
    assert run(cfg, "once", "--outbox", str(outbox)) == 0
    files = sorted(outbox.glob("*.eml"))
    assert [f.name[11:] for f in files] == ["alice@example.org.eml", "bob@example.org.eml"]
    msg = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert msg["To"] == "Alice <alice@example.org>" and smtp.received == []
    assert delivered(cfg)["alice@example.org"]


def test_dry_run_outbox_records_nothing(setup) -> None:
    cfg, _, _ = setup
    outbox = cfg.parent / "outbox"
    assert run(cfg, "once", "--dry-run", "--outbox", str(outbox)) == 0
    assert len(list(outbox.glob("*.eml"))) == 2
    assert not (cfg.parent / "digest.json").exists()


def test_an_outbox_file_is_never_overwritten(setup) -> None:
    cfg, _, _ = setup
    outbox = cfg.parent / "outbox"
    assert run(cfg, "once", "--dry-run", "--outbox", str(outbox)) == 0
    first = {f.name: f.read_bytes() for f in outbox.glob("*.eml")}
    assert run(cfg, "once", "--dry-run", "--outbox", str(outbox)) == 0
    names = sorted(f.name[11:] for f in outbox.glob("*.eml"))
    assert names == [
        "alice@example.org-2.eml",
        "alice@example.org.eml",
        "bob@example.org-2.eml",
        "bob@example.org.eml",
    ]
    assert all((outbox / name).read_bytes() == data for name, data in first.items())


def test_only_one_subscriber(setup, capsys) -> None:
    cfg, _, smtp = setup
    assert run(cfg, "once", "--subscriber", "bob@example.org") == 0
    assert [r.rcpt_tos for r in smtp.received] == [["bob@example.org"]]
    assert run(cfg, "once", "--subscriber", "nobody@example.org") == 2
    assert "no subscriber nobody@example.org" in capsys.readouterr().err


def test_new_subscriber_starts_at_the_last_announcement_or_lookback_days_back(
    smtp, write_config
) -> None:
    header, entries = recent_entries(CORPUS, spacing=timedelta(hours=5))  # 30 papers, 6 days
    with ArxivServer(header, entries) as arxiv:
        cfg = write_config(config_dict(arxiv.url, smtp.port, lookback_days=1))
        assert run(cfg, "once") == 0
    now = datetime.now(UTC)
    opened, _ = last_announced(now)
    cutoff = min(opened, now - timedelta(days=1)) - timedelta(minutes=5)
    from digest.arxiv.feed import parse_page

    papers = {p.id: p for p in parse_page(header + b"".join(entries) + b"</feed>").papers}
    sent = [pid for r in smtp.received for pid in listed_ids(r.message)]
    assert sent and all(papers[pid].published >= cutoff for pid in sent)


def test_arxiv_unavailable_exits_75_readably_and_records_nothing(
    setup, capsys, monkeypatch
) -> None:
    cfg, arxiv, smtp = setup
    arxiv.state.faults = ["503"] * 10
    data = config_dict(arxiv.url, smtp.port)
    data["settings"]["arxiv"]["max_retries"] = 1
    cfg.write_text(json.dumps(data))  # YAML is a superset of JSON
    monkeypatch.setattr("digest.arxiv.fetch.BACKOFF_BASE", 0.01)
    assert run(cfg, "once") == 75
    err = capsys.readouterr().err
    assert "arXiv did not give a usable answer after 2 attempts (last: HTTP 503)" in err
    assert "Traceback" not in err and smtp.received == []
    assert delivered(cfg) == {}


# -- cadence, on an injected clock ----------------------------------------------


MONDAY = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)


class World:
    """A config, a store path, a loopback arXiv and SMTP, and a clock we set."""

    def __init__(self, arxiv: ArxivServer, smtp: SmtpServer, path: Path) -> None:
        self.arxiv = arxiv
        self.smtp = smtp
        self.path = path
        self.arxiv.state.entries = []

    def configure(self, subscribers: list[dict[str, Any]], **settings: Any) -> None:
        data = config_dict(self.arxiv.url, self.smtp.port, subscribers, **settings)
        self.path.write_text(yaml.safe_dump(data))

    def publish(
        self,
        n: int,
        when: datetime,
        title: str = "A proton study",
        version: int = 1,
        comment: str | None = None,
    ) -> str:
        pid = f"2612.{n:05d}"
        self.arxiv.state.entries.insert(
            0,
            make_entry(
                pid,
                f"{title} {n}",
                "We measure the proton radius.",
                version=version,
                comment=comment,
                published=when,
            ),
        )
        return pid

    def cycle(self, now: datetime) -> CycleReport:
        cfg = config_mod.load(self.path, env={})

        async def go(store: Store) -> CycleReport:
            async with collaborators(cfg.settings, Options(), now=now) as collab:
                return await run_cycle(cfg, store, collab, now=now)

        with Store.open(cfg.settings.database, now=now) as store:
            return asyncio.run(go(store))

    def inbox(self, rcpt: str) -> list[Any]:
        return [r.message for r in self.smtp.received if r.rcpt_tos == [rcpt]]


@pytest.fixture
def world(arxiv, smtp, tmp_path: Path) -> World:
    return World(arxiv, smtp, tmp_path / "subscribers.yaml")


# a paper shown in full ("Abstract: <link>") or as a compact row (its link leads the line)
SHOWN = re.compile(r"^ {3}(?:Abstract: )?https://arxiv.org/abs/([^\s|]+)", re.M)


def ids_in(msg: Any) -> list[str]:
    return SHOWN.findall(msg.get_body(("plain",)).get_content())


def new_ids_in(msg: Any) -> list[str]:
    text = msg.get_body(("plain",)).get_content()
    text = text.split("UPDATED SINCE YOU SAW THEM")[0]
    return SHOWN.findall(text)


SUBSCRIBERS = [
    {"email": "daily@example.org", "keywords": ["proton"]},
    {
        "email": "weekly@example.org",
        "keywords": ["proton"],
        "frequency": "weekly",
        "weekday": "wed",
    },
]


def test_weekly_gets_one_digest_on_its_weekday_with_the_whole_week(world: World) -> None:
    world.configure(SUBSCRIBERS, lookback_days=2)
    sent_daily: list[str] = []
    for day in range(0, 4):  # Monday .. Thursday
        now = MONDAY + timedelta(days=day)
        world.publish(day, now - timedelta(hours=1))
        world.cycle(now)
        sent_daily.append(f"2612.{day:05d}")
    weekly = world.inbox("weekly@example.org")
    assert len(weekly) == 1  # only on Wednesday
    assert weekly[0]["Date"].startswith("Wed, 02 Dec 2026")
    assert sorted(ids_in(weekly[0])) == ["2612.00000", "2612.00001", "2612.00002"]
    assert "Weekly Papers" in weekly[0].get_body(("plain",)).get_content()
    # daily subscribers are unaffected: one digest a day, each paper once
    daily = world.inbox("daily@example.org")
    assert [ids_in(m) for m in daily] == [[i] for i in sent_daily]


def test_a_weekly_digest_missed_on_its_day_is_caught_up_once(world: World) -> None:
    world.configure(SUBSCRIBERS, lookback_days=2)
    world.cycle(MONDAY)  # the weekly subscriber is first seen
    world.publish(1, MONDAY + timedelta(days=1))
    world.cycle(MONDAY + timedelta(days=1, hours=1))  # Tuesday: not due
    # the daemon is down on Wednesday; back on Thursday
    world.publish(2, MONDAY + timedelta(days=2))
    thursday = MONDAY + timedelta(days=3)
    world.cycle(thursday)
    assert [sorted(ids_in(m)) for m in world.inbox("weekly@example.org")] == [
        ["2612.00001", "2612.00002"]
    ]
    world.cycle(thursday + timedelta(hours=2))  # and nothing twice
    assert len(world.inbox("weekly@example.org")) == 1


def test_weekly_with_nothing_new_is_served_silently_and_not_retried_daily(world: World) -> None:
    world.configure(SUBSCRIBERS[1:], lookback_days=2)
    world.cycle(MONDAY)
    wednesday = MONDAY + timedelta(days=2)
    r = world.cycle(wednesday)
    assert [s.status for s in r.subscribers] == ["nothing"]
    world.publish(1, wednesday + timedelta(hours=3))
    r = world.cycle(wednesday + timedelta(days=1))  # Thursday: waits for next week
    assert [s.status for s in r.subscribers] == ["waiting"]
    assert world.inbox("weekly@example.org") == []


REVISIONS = [
    {"email": "rev@example.org", "keywords": ["proton"], "include_revisions": True},
    {"email": "plain@example.org", "keywords": ["proton"]},
]


def test_a_new_version_appears_once_in_the_revision_section_for_those_who_asked(
    world: World,
) -> None:
    world.configure(REVISIONS, lookback_days=2)
    pid = world.publish(1, MONDAY - timedelta(hours=2))
    world.cycle(MONDAY)
    assert [ids_in(m) for m in world.inbox("rev@example.org")] == [[pid]]
    # ten days later v2 appears: its submission date is still v1's, outside the window
    later = MONDAY + timedelta(days=10)
    world.arxiv.state.entries.insert(
        0,
        make_entry(
            pid,
            "A proton study 1 (revised)",
            "We measure the proton radius again.",
            version=2,
            comment="v2: 12 pages, new figure",
            published=MONDAY - timedelta(hours=2),
        ),
    )
    world.publish(2, later - timedelta(hours=1))
    requests_before = len(world.arxiv.state.requests)
    world.cycle(later)
    id_lookups = [
        r for r in world.arxiv.state.requests[requests_before:] if r.params.get("id_list")
    ]
    assert [r.params["id_list"] for r in id_lookups] == [pid]
    rev_mail = world.inbox("rev@example.org")[-1]
    text = rev_mail.get_body(("plain",)).get_content()
    assert "UPDATED SINCE YOU SAW THEM (1)" in text and "now v2" in text
    assert "v2: 12 pages, new figure" in text
    assert new_ids_in(rev_mail) == ["2612.00002"]  # never as a new paper
    assert rev_mail["Subject"].startswith("1 new arXiv paper, 1 updated:")
    plain_mail = world.inbox("plain@example.org")[-1]
    assert "UPDATED SINCE" not in plain_mail.get_body(("plain",)).get_content()
    assert ids_in(plain_mail) == ["2612.00002"]
    # once per version: the next cycle says nothing more about it
    world.cycle(later + timedelta(days=1))
    assert len(world.inbox("rev@example.org")) == 2


def test_send_empty_says_why(world: World) -> None:
    world.configure(
        [{"email": "e@example.org", "keywords": ["proton"], "send_empty": True}], lookback_days=2
    )
    saturday = MONDAY + timedelta(days=5)
    world.cycle(saturday - timedelta(days=1))  # Friday: first cycle, nothing at all
    world.cycle(saturday)  # Saturday: no announcement since Friday
    world.cycle(saturday + timedelta(hours=1))  # same day: the note is not repeated
    mails = world.inbox("e@example.org")
    assert len(mails) == 2
    assert mails[0]["Subject"] == "No new arXiv papers: proton"
    last = mails[1].get_body(("plain",)).get_content()
    assert "Nothing new today: arXiv has announced no new papers since your last digest" in last
    html = mails[1].get_body(("html",)).get_content()
    assert "Thank you to arXiv" in html


def test_send_empty_when_announcements_had_no_match(world: World) -> None:
    world.configure(
        [{"email": "e@example.org", "keywords": ["neutrino"], "send_empty": True}], lookback_days=2
    )
    world.publish(1, MONDAY - timedelta(hours=1))
    world.cycle(MONDAY)
    tuesday = MONDAY + timedelta(days=1)
    world.cycle(tuesday)
    text = world.inbox("e@example.org")[-1].get_body(("plain",)).get_content()
    assert "none of the papers arXiv announced since your last digest matched" in text


def test_per_subscriber_max_papers_per_keyword(world: World) -> None:
    world.configure(
        [
            {"email": "few@example.org", "keywords": ["proton"], "max_papers_per_keyword": 2},
            {"email": "many@example.org", "keywords": ["proton"]},
        ],
        lookback_days=2,
    )
    for i in range(5):
        world.publish(i, MONDAY - timedelta(hours=i + 1))
    world.cycle(MONDAY)
    few = world.inbox("few@example.org")[0].get_body(("plain",)).get_content()
    many = world.inbox("many@example.org")[0]
    # two in full, the other three as compact rows: all five shown and recorded
    assert len(re.findall(r"Abstract: ", few)) == 2
    assert len(ids_in(world.inbox("few@example.org")[0])) == 5
    assert len(ids_in(many)) == 5
    assert world.inbox("few@example.org")[0]["Subject"].startswith("5 new arXiv papers")


def test_daily_and_weekly_are_served_from_the_same_fetches(world: World) -> None:
    world.configure(SUBSCRIBERS, lookback_days=2)
    wednesday = MONDAY + timedelta(days=2)
    world.cycle(MONDAY)  # the weekly subscriber is new: it waits for its first wednesday
    pid = world.publish(1, wednesday - timedelta(hours=3))
    report = world.cycle(wednesday)
    assert {r.email: r.status for r in report.subscribers} == {
        "daily@example.org": "sent",
        "weekly@example.org": "sent",
    }
    assert ids_in(world.inbox("daily@example.org")[-1]) == [pid]
    assert ids_in(world.inbox("weekly@example.org")[-1]) == [pid]
    searches = [r for r in world.arxiv.state.requests if r.params.get("search_query")]
    # one query per cycle covers both subscribers: no fetch of its own for the weekly one
    assert len(searches) == 2 and len({r.params["search_query"] for r in searches}) == 2


# -- housekeeping ------------------------------------------------------------------


def test_an_unwritable_archive_page_does_not_fail_a_delivered_cycle(setup, capsys) -> None:
    cfg, _, smtp = setup
    data = yaml.safe_load(cfg.read_text())
    data["settings"]["archive"] = str(cfg / "papers.md")  # under a file: cannot be written
    cfg.write_text(yaml.safe_dump(data))
    assert run(cfg, "once") == 0
    assert len(smtp.received) == 2 and all(delivered(cfg).values())
    err = capsys.readouterr().err
    assert "housekeeping after the cycle failed (the deliveries stand)" in err
    assert "cannot write the Daily Papers page" in err
    with Store.open(cfg.parent / "digest.json", readonly=True) as store:
        last = store.last_cycle()
    assert last is not None and last["result"] == "ok"


# -- one reader's failure is theirs alone ------------------------------------------


INTERNATIONAL = [
    # first in the file: a failure here must not stop the readers after it
    {"email": "jörg@example.org", "keywords": ["proton"]},
    {"email": "user@xn--bcher-kva.example", "name": "Ülrike", "keywords": ["proton"]},
    {"email": "alice@example.org", "name": "Alice", "keywords": ["deep learning", "proton"]},
]


def header_lines(raw: bytes, name: bytes) -> list[bytes]:
    head = raw.split(b"\n\n", 1)[0].replace(b"\r\n", b"\n")
    return [line for line in head.split(b"\n") if line.startswith(name + b":")]


def test_internationalised_addresses_go_out_as_smtp_allows_and_stop_nobody(
    arxiv, smtp, write_config, capsys
) -> None:
    cfg = write_config(config_dict(arxiv.url, smtp.port, INTERNATIONAL))
    assert run(cfg, "once") == 75
    assert [r.rcpt_tos for r in smtp.received] == [
        ["user@xn--bcher-kva.example"],  # the domain in A-labels, to a server without SMTPUTF8
        ["alice@example.org"],
    ]
    # the header names the envelope's address, in a form any server and client takes
    assert header_lines(smtp.received[0].raw, b"To") == [
        b"To: =?utf-8?q?=C3=9Clrike?= <user@xn--bcher-kva.example>"
    ]
    err = capsys.readouterr().err
    assert "jörg@example.org: failed" in err and "SMTPUTF8" in err
    assert "user@bücher.example: sent" in err
    assert delivered(cfg)["jörg@example.org"] == {}  # his papers stay pending
    assert run(cfg, "status") == 0
    out = capsys.readouterr().out
    assert ", partial:" in out
    assert "  not delivered, their papers stay pending:" in out
    failed = r"^    jörg@example\.org: failed, \d+ papers? stay pending \(.*SMTPUTF8"
    assert re.search(failed, out, re.M)


def test_a_non_ascii_local_part_is_delivered_where_the_server_offers_smtputf8(
    arxiv, write_config
) -> None:
    with SmtpServer(smtputf8=True) as smtp:
        cfg = write_config(config_dict(arxiv.url, smtp.port, INTERNATIONAL))
        assert run(cfg, "once") == 0
    got = {r.rcpt_tos[0]: r for r in smtp.received}
    assert sorted(got) == ["alice@example.org", "jörg@example.org", "user@xn--bcher-kva.example"]
    assert got["jörg@example.org"].smtputf8 and not got["alice@example.org"].smtputf8
    # RFC 6532: the address in the header as UTF-8, not an encoded word (RFC 2047 §5 forbids it)
    assert header_lines(got["jörg@example.org"].raw, b"To") == ["To: jörg@example.org".encode()]
    assert delivered(cfg)["jörg@example.org"]


def test_a_cycle_ended_by_a_bug_is_recorded_as_failed_never_ok(
    setup, monkeypatch, capsys
) -> None:
    from digest.cycle import run as run_mod

    def broken(*args: Any) -> Any:
        raise RuntimeError("something digest did not expect")

    monkeypatch.setattr(run_mod, "candidates", broken)
    cfg, _, _ = setup
    assert run(cfg, "once") == 70
    with Store.open(cfg.parent / "digest.json", readonly=True) as store:
        last = store.last_cycle()
    assert last is not None and last["result"] == "failed"
    assert "RuntimeError: something digest did not expect" in last["error"]
    capsys.readouterr()
    assert run(cfg, "status") == 0
    assert ", failed:" in capsys.readouterr().out


def test_a_reader_whose_library_cannot_be_read_fails_alone(setup, capsys) -> None:
    cfg, _, smtp = setup
    data = yaml.safe_load(cfg.read_text())
    data["subscribers"][0]["library"] = "missing.bib"  # alice's: first in the file
    cfg.write_text(yaml.safe_dump(data))
    assert run(cfg, "once") == 75
    assert [r.rcpt_tos for r in smtp.received] == [["bob@example.org"]]
    err = capsys.readouterr().err
    assert re.search(
        r"alice@example\.org: failed, \d+ papers stay pending \(library \S*missing\.bib: "
        r"cannot read the file",
        err,
    )
    assert delivered(cfg)["alice@example.org"] == {}
    (cfg.parent / "missing.bib").write_text("@misc{x, title = {Deep learning}}\n")
    assert run(cfg, "once") == 0  # once it can be read, her papers come
    assert [r.rcpt_tos for r in smtp.received][-1] == ["alice@example.org"]



def test_a_reader_whose_stored_reply_state_is_damaged_is_not_mailed_and_stops_nobody(
    setup, capsys
) -> None:
    cfg, _, smtp = setup
    db = cfg.parent / "digest.json"
    alice = {"email": "alice@example.org", "replies": {"unsubscribed_at": 17}, "batches": []}
    db.write_text(json.dumps({"meta": {"1": {"schema": 3}}, "subscribers": {"1": alice}}))
    assert run(cfg, "once") == 75
    assert [r.rcpt_tos for r in smtp.received] == [["bob@example.org"]]  # she may have left
    err = capsys.readouterr().err
    damaged = "alice@example.org: failed (the stored reply state of alice@example.org is damaged"
    assert damaged in err
    assert "digest readers alice@example.org --resume starts it afresh" in err
    assert run(cfg, "status") == 0
    out = capsys.readouterr().out
    assert re.search(r"^  alice@example\.org: the stored reply state .* is damaged", out, re.M)
    assert re.search(r"^  bob@example\.org: \d+ delivered, 0 pending", out, re.M)
