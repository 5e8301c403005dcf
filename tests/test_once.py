"""`digest once` end to end: loopback arXiv, real aiosmtpd, the delivery contract."""

from __future__ import annotations

import email
import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path

import pytest

from digest.cli import main
from digest.matching import contains_phrase
from digest.store import Store
from tests.conftest import CORPUS, config_dict
from tests.support.arxiv_server import ArxivServer, make_entry, recent_entries
from tests.support.smtp_server import SmtpServer

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = '<script>alert(1)</script> & <img src=x onerror=alert(2)> "q"'


def run(cfg: Path, *args: str) -> int:
    return main([args[0], "--config", str(cfg), *args[1:]])


def delivered(cfg: Path) -> dict[str, dict[str, int]]:
    db = cfg.parent / "digest.json"
    if not db.exists():
        return {}
    with Store.open(db, readonly=True) as store:
        return {e: dict(store.subscriber(e).delivered) for e in store.subscriber_emails()}


def listed_ids(msg: email.message.EmailMessage) -> list[str]:
    text = msg.get_body(("plain",)).get_content()
    return re.findall(r"Abstract: https://arxiv.org/abs/(\S+)", text)


@pytest.fixture
def setup(arxiv: ArxivServer, smtp: SmtpServer, write_config):
    cfg = write_config(config_dict(arxiv.url, smtp.port))
    return cfg, arxiv, smtp


def test_one_digest_per_subscriber_with_exactly_the_matching_papers(setup, capsys) -> None:
    cfg, arxiv, smtp = setup
    assert run(cfg, "once") == 0
    by_rcpt = {r.rcpt_tos[0]: r.message for r in smtp.received}
    assert sorted(by_rcpt) == ["alice@example.org", "bob@example.org"]
    # the server returned all 30 recorded papers for every query; only true matches go out
    from digest.feed import parse_page

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
        assert run(cfg, "once") == 75
        assert len(smtp.received) == 2
        smtp.behaviour.close_after = None
        assert run(cfg, "once") == 0
        assert run(cfg, "once") == 0
    rcpts = sorted(r.rcpt_tos[0] for r in smtp.received)
    assert rcpts == [f"u{i}@example.org" for i in range(5)]  # each exactly once
    ids = {tuple(sorted(listed_ids(r.message))) for r in smtp.received}
    assert len(ids) == 1  # everyone got the same papers


def test_smtp_down_exits_75_and_keeps_everything_pending(arxiv, write_config, capsys) -> None:
    cfg = write_config(config_dict(arxiv.url, 9))
    assert run(cfg, "once") == 75
    assert delivered(cfg) == {"alice@example.org": {}, "bob@example.org": {}}
    err = capsys.readouterr().err
    assert "deferred" in err and "cannot connect to 127.0.0.1:9" in err
    assert "Traceback" not in err


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


def test_only_one_subscriber(setup, capsys) -> None:
    cfg, _, smtp = setup
    assert run(cfg, "once", "--subscriber", "bob@example.org") == 0
    assert [r.rcpt_tos for r in smtp.received] == [["bob@example.org"]]
    assert run(cfg, "once", "--subscriber", "nobody@example.org") == 2
    assert "no subscriber nobody@example.org" in capsys.readouterr().err


def test_new_subscriber_starts_lookback_days_back(smtp, write_config) -> None:
    header, entries = recent_entries(CORPUS, spacing=timedelta(hours=5))  # 30 papers, 6 days
    with ArxivServer(header, entries) as arxiv:
        cfg = write_config(config_dict(arxiv.url, smtp.port, lookback_days=1))
        assert run(cfg, "once") == 0
    cutoff = datetime.now(UTC) - timedelta(days=1, minutes=5)
    from digest.feed import parse_page

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
    monkeypatch.setattr("digest.fetch.BACKOFF_BASE", 0.01)
    assert run(cfg, "once") == 75
    err = capsys.readouterr().err
    assert "arXiv did not give a usable answer after 2 attempts (last: HTTP 503)" in err
    assert "Traceback" not in err and smtp.received == []
    assert delivered(cfg) == {}


def test_broken_yaml_exits_78_with_line_and_no_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "subscribers.yaml"
    cfg.write_text("subscribers:\n  - email: a@example.org\n    keywords: [x\n")
    proc = subprocess.run(
        [sys.executable, "-m", "digest", "check", "--config", str(cfg)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 78
    assert proc.stderr.startswith(f"digest: {cfg}: 1 problem:\n  line 4, column 1: YAML syntax")
    assert "Traceback" not in proc.stderr


def test_corrupt_database_exits_78_and_says_what_to_do(setup, capsys) -> None:
    cfg, _, _ = setup
    (cfg.parent / "digest.json").write_text("{truncated")
    assert run(cfg, "once") == 78
    err = capsys.readouterr().err
    assert "is unreadable (invalid JSON" in err and "mv " in err and "Traceback" not in err


def test_check_validates_and_reports_counts(setup, capsys) -> None:
    cfg, _, _ = setup
    assert run(cfg, "check") == 0
    assert "OK: 2 subscribers, 4 distinct keywords" in capsys.readouterr().out
    assert run(cfg, "check", "--smtp") == 0


def test_check_smtp_unreachable_is_75(arxiv, write_config, capsys) -> None:
    cfg = write_config(config_dict(arxiv.url, 9))
    assert run(cfg, "check", "--smtp") == 75
    assert "cannot connect to 127.0.0.1:9" in capsys.readouterr().err


def test_preview_writes_html_without_sending_or_recording(setup, capsys) -> None:
    cfg, _, smtp = setup
    out = cfg.parent / "preview.html"
    assert run(cfg, "preview", "alice@example.org", "-o", str(out)) == 0
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>") and "Thank you to arXiv" in html
    assert smtp.received == [] and not (cfg.parent / "digest.json").exists()
    assert run(cfg, "preview", "alice@example.org") == 0
    printed = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed.exists() and printed.read_text() == html
    printed.unlink()


def test_status_shows_last_cycle_and_pending(setup, capsys) -> None:
    cfg, _, smtp = setup
    smtp.behaviour.refuse["alice@example.org"] = "550 no"
    run(cfg, "once")
    capsys.readouterr()
    assert run(cfg, "status") == 0
    out = capsys.readouterr().out
    assert "last cycle:" in out and "partial" in out and "next cycle:" in out
    assert re.search(r"alice@example.org: 0 delivered, \d+ pending", out)
    assert re.search(r"bob@example.org: \d+ delivered, 0 pending", out)
