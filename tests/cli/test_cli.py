"""The ``digest`` command: check, preview, status and error reporting."""

from __future__ import annotations

import errno
import logging
import re
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from digest.cli import entry as cli
from digest.cli import terminal
from digest.cli.entry import main
from digest.cli.status import quiet_cycle_note
from digest.cycle.report import CycleRecord
from digest.errors import OutputError, translate
from tests.support.arxiv_server import ArxivServer
from tests.support.configs import config_dict
from tests.support.paths import ROOT
from tests.support.smtp_server import SmtpServer


def run(cfg: Path, *args: str) -> int:
    return main([args[0], "--config", str(cfg), *args[1:]])


@pytest.fixture
def setup(arxiv: ArxivServer, smtp: SmtpServer, write_config):
    cfg = write_config(config_dict(arxiv.url, smtp.port))
    return cfg, arxiv, smtp


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


def test_semantic_without_its_extra_exits_78_before_asking_arxiv(
    arxiv: ArxivServer, smtp: SmtpServer, write_config, monkeypatch, capsys
) -> None:
    from digest.ranking import semantic

    cfg = write_config(config_dict(arxiv.url, smtp.port, semantic=True))
    semantic.load.cache_clear()
    monkeypatch.setitem(sys.modules, "wordllama", None)  # as where the extra is not installed
    try:
        assert run(cfg, "check") == 78
        assert run(cfg, "once") == 78
    finally:
        semantic.load.cache_clear()
    out, err = capsys.readouterr()
    assert "pip install 'daily-papers-digest[semantic]'" in err and "Traceback" not in err
    assert "OK:" not in out  # check never says OK before refusing
    assert arxiv.state.requests == [] and smtp.received == []


def test_semantic_with_its_extra_ranks_a_whole_cycle(setup, capsys) -> None:
    pytest.importorskip("wordllama", reason="the semantic extra: pip install '.[semantic]'")
    cfg, _, smtp = setup
    conf = yaml.safe_load(cfg.read_text())
    conf["settings"]["semantic"] = True
    conf["subscribers"][0]["likes"] = ["1309.4668"]  # one of the day's papers: its text is known
    cfg.write_text(yaml.safe_dump(conf))
    assert run(cfg, "check") == 0
    assert "ranking reads meaning too" in capsys.readouterr().out
    assert run(cfg, "once") == 0
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == ["alice@example.org", "bob@example.org"]


INTERNATIONAL = [
    {"email": "jörg@example.org", "keywords": ["proton"]},
    {"email": "user@xn--bcher-kva.example", "keywords": ["proton"]},
    {"email": "alice@example.org", "keywords": ["proton"]},
]


def test_check_says_in_advance_what_it_does_with_each_internationalised_address(
    arxiv, smtp, write_config, capsys
) -> None:
    cfg = write_config(config_dict(arxiv.url, smtp.port, INTERNATIONAL))
    assert run(cfg, "check") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == [
        "  jörg@example.org: its local part is not ASCII: it is sent only through an SMTP "
        "server that offers SMTPUTF8 (RFC 6531), and where yours does not, this reader's "
        "digest fails and the others go out; check --smtp asks the server",
        "  user@bücher.example: sent to user@xn--bcher-kva.example (the domain in IDNA "
        "A-labels, RFC 5890)",
    ]
    # the server does not offer SMTPUTF8: jörg's digest would fail every cycle
    assert run(cfg, "check", "--smtp") == 78
    err = capsys.readouterr().err
    assert (
        f"subscribers[0].email: jörg@example.org: its local part is not ASCII and "
        f"127.0.0.1:{smtp.port} does not offer SMTPUTF8 (RFC 6531)"
    ) in err


def test_check_smtp_says_a_non_ascii_local_part_goes_out_where_smtputf8_is_offered(
    arxiv, write_config, capsys
) -> None:
    with SmtpServer(smtputf8=True) as smtp:
        cfg = write_config(config_dict(arxiv.url, smtp.port, INTERNATIONAL))
        assert run(cfg, "check", "--smtp") == 0
    out = capsys.readouterr().out
    assert f"  jörg@example.org: sent with SMTPUTF8, which 127.0.0.1:{smtp.port} offers" in out
    assert "it offers SMTPUTF8" in out


def test_check_names_a_library_that_cannot_be_read_and_what_it_costs(
    setup, capsys
) -> None:
    cfg, _, _ = setup
    data = yaml.safe_load(cfg.read_text())
    data["subscribers"][0]["library"] = "missing.bib"
    cfg.write_text(yaml.safe_dump(data))
    assert run(cfg, "check") == 78
    err = capsys.readouterr().err
    assert f"subscribers[0].library: {cfg.parent / 'missing.bib'}: cannot read the file" in err
    assert "this reader's digest fails each cycle until it can be read" in err


def test_preview_of_a_reader_whose_digest_cannot_be_made_says_why(setup, capsys) -> None:
    cfg, _, smtp = setup
    data = yaml.safe_load(cfg.read_text())
    data["subscribers"][0]["library"] = "missing.bib"
    cfg.write_text(yaml.safe_dump(data))
    assert run(cfg, "preview", "alice@example.org") == 75
    err = capsys.readouterr().err
    assert "alice@example.org: failed" in err and "missing.bib: cannot read the file" in err
    assert "nothing new" not in err and smtp.received == []


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
    # the same digest; each preview signs its links with a throw-away key of its own
    unsigned = re.compile(r"%20[A-Z2-7]{26,}\b")
    assert printed.exists() and unsigned.sub("", printed.read_text()) == unsigned.sub("", html)
    printed.unlink()


@pytest.mark.parametrize(
    "argv",
    [
        ["preview", "alice@example.org", "-o", "{d}/missing/x.html"],
        ["archive", "-o", "{d}/digest.yaml-is-a-file/page.md"],
        ["archive", "-o", "{d}"],
        ["once", "--outbox", "{d}/digest.yaml-is-a-file"],
    ],
    ids=["preview-missing-folder", "archive-under-a-file", "archive-to-a-folder", "outbox-file"],
)
def test_an_output_that_cannot_be_written_fails_before_any_work(setup, capsys, argv) -> None:
    cfg, arxiv, smtp = setup
    d = str(cfg.parent)
    (cfg.parent / "digest.yaml-is-a-file").write_text("x")
    argv = [a.format(d=d) for a in argv]
    assert run(cfg, *argv) == 73  # EX_CANTCREAT, not "unexpected error"
    err = capsys.readouterr().err
    assert "cannot be written" in err and argv[-1] in err and "Traceback" not in err
    assert arxiv.state.requests == [] and smtp.received == []  # checked before the work


def test_once_gives_up_at_once_when_arxiv_cannot_be_reached(write_config, capsys) -> None:
    cfg = write_config(config_dict("http://127.0.0.1:9/api/query"))
    started = time.monotonic()
    assert run(cfg, "once") == 75
    assert time.monotonic() - started < 10  # not minutes of back-off
    err = capsys.readouterr().err
    assert "cannot reach arXiv" in err and "refused the connection" in err
    assert "Traceback" not in err


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


def test_status_names_the_readers_not_delivered_and_counts_past_twenty(
    arxiv: ArxivServer, write_config, capsys
) -> None:
    readers = [{"email": f"r{i:02d}@example.org", "keywords": ["proton"]} for i in range(23)]
    cfg = write_config(config_dict(arxiv.url, 9, readers))  # no SMTP server there
    assert run(cfg, "once") == 75
    capsys.readouterr()
    assert run(cfg, "status") == 0
    out = capsys.readouterr().out
    assert re.search(r"^last cycle: .*, partial: .*23 deferred$", out, re.M)
    line = r"^    (r\d\d@example\.org): deferred, \d+ papers? stay pending \("
    named = re.findall(line, out, re.M)
    assert named == [f"r{i:02d}@example.org" for i in range(20)]
    assert "    and 3 more (the cycle's log names them)" in out


def record(**changes: object) -> CycleRecord:
    base = CycleRecord(
        started=datetime(2026, 12, 5, 7, tzinfo=UTC),  # a Saturday
        finished=datetime(2026, 12, 5, 7, 1, tzinfo=UTC),
        result="ok",
        requests=1,
        fetched=10,
        new_papers=0,
        previous_fetch=datetime(2026, 12, 4, 7, tzinfo=UTC),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_status_says_whether_a_quiet_cycle_is_expected() -> None:
    assert "as expected" in quiet_cycle_note(record())
    tuesday = record(
        started=datetime(2026, 12, 1, 7, tzinfo=UTC),
        previous_fetch=datetime(2026, 11, 30, 7, tzinfo=UTC),
    )
    assert quiet_cycle_note(tuesday).startswith("suspicious: arXiv announced 1 time")
    assert quiet_cycle_note(replace(tuesday, new_papers=3)) is None
    assert "first cycle" in quiet_cycle_note(replace(tuesday, previous_fetch=None))


def test_the_cycle_record_round_trips_through_the_store_dict() -> None:
    r = record(
        counts={"sent": 2, "failed": 1},
        error="x",
        matched=4,
        not_delivered={"a@example.org": "failed (why)"},
    )
    assert CycleRecord.from_dict(r.to_dict()) == r


def test_status_counts_pending_as_once_would_send_them(setup, capsys) -> None:
    cfg, _, _ = setup
    # a real cycle for bob only: alice's keywords are new to the store afterwards
    assert run(cfg, "once", "--subscriber", "bob@example.org") == 0
    capsys.readouterr()
    assert run(cfg, "status") == 0
    out = capsys.readouterr().out
    pending = int(re.search(r"alice@example.org: 0 delivered, (\d+) pending", out).group(1))
    assert pending > 0  # counted from lookback_start, as the cycle does, not from now
    assert run(cfg, "once", "--subscriber", "alice@example.org", "--dry-run") == 0
    assert capsys.readouterr().out.count("  - ") == pending


def test_check_names_an_unwritable_archive_setting(setup, capsys) -> None:
    cfg, _, _ = setup
    page = cfg / "papers.md"  # under a file, not a folder: unwritable even for root
    data = yaml.safe_load(cfg.read_text())
    data["settings"]["archive"] = str(page)
    cfg.write_text(yaml.safe_dump(data))
    assert run(cfg, "check") == 78
    err = capsys.readouterr().err
    assert f"settings.archive {page} cannot be written: {cfg} is not a folder" in err


def test_check_names_a_database_path_that_is_a_folder(setup, capsys) -> None:
    cfg, _, _ = setup
    data = yaml.safe_load(cfg.read_text())
    data["settings"]["database"] = str(cfg.parent)
    cfg.write_text(yaml.safe_dump(data))
    assert run(cfg, "check") == 78
    assert f"settings.database {cfg.parent} cannot be written: {cfg.parent} is a folder" in (
        capsys.readouterr().err
    )


# -- where global options may go: before or after the command ----------------

GOOD = "subscribers:\n  - email: a@example.org\n    keywords: [compiler]\n"
BROKEN = "subscribers:\n  - email: not-an-address\n    keywords: [compiler]\n"


@pytest.fixture
def two_configs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A valid subscribers.yaml in the working folder and a broken other.yaml."""
    (tmp_path / "subscribers.yaml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "other.yaml").write_text(BROKEN, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGEST_CONFIG", raising=False)
    return tmp_path


@pytest.mark.parametrize(
    "argv",
    [["--config", "other.yaml", "check"], ["check", "--config", "other.yaml"]],
    ids=["before-the-command", "after-the-command"],
)
def test_config_option_is_honoured_before_and_after_the_command(
    two_configs: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 78  # other.yaml was read, not the working folder's subscribers.yaml
    assert "other.yaml" in capsys.readouterr().err


def test_without_config_option_the_working_folder_file_is_read(two_configs: Path) -> None:
    assert cli.main(["check"]) == 0


@pytest.mark.parametrize("argv", [["-v", "check"], ["check", "-v"]], ids=["before", "after"])
def test_verbose_is_honoured_before_and_after_the_command(
    two_configs: Path, argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []
    monkeypatch.setattr(cli, "setup_logging", seen.append)
    assert cli.main(argv) == 0
    assert seen == [True]


def test_the_later_config_option_wins(two_configs: Path) -> None:
    argv = ["--config", "other.yaml", "check", "--config", "subscribers.yaml"]
    assert cli.main(argv) == 0


# -- what an operator reads: times in the configured zone, honest summaries ---


def test_status_reads_as_text_in_the_configured_time_zone(arxiv, smtp, write_config, capsys):
    cfg = write_config(config_dict(arxiv.url, smtp.port, timezone="America/New_York"))
    assert run(cfg, "once") == 0
    capsys.readouterr()
    assert run(cfg, "status") == 0
    out = capsys.readouterr().out
    assert "{" not in out and "'" not in out  # no Python dict
    assert re.search(r"^last cycle: .* America/New_York \(\d\d:\d\d(:\d\d)? UTC\), ok: ", out, re.M)
    assert re.search(r"2 sent", out)
    assert re.search(r"^next cycle: \S+ 07:00 America/New_York \(1[12]:00 UTC\)$", out, re.M)


def test_dry_run_into_an_outbox_does_not_claim_delivery(setup, capsys) -> None:
    cfg, _, _ = setup
    assert run(cfg, "once", "--dry-run", "--outbox", str(cfg.parent / "out")) == 0
    (summary,) = [ln for ln in capsys.readouterr().err.splitlines() if " INFO cycle " in ln]
    assert "delivered" not in summary
    assert "written to the outbox, nothing recorded (dry run)" in summary


def test_a_log_line_erases_the_progress_line_first(monkeypatch, capsys) -> None:
    monkeypatch.setattr(terminal, "stderr_is_tty", lambda: True)
    terminal.setup_logging(False)
    progress = terminal.ProgressLine("fetching arXiv")
    progress(1, 3)
    logging.getLogger("digest.test").info("fetched 3 papers")
    err = capsys.readouterr().err
    assert err.startswith("\rfetching arXiv 1/3\x1b[K\r\x1b[K")  # erased before the log line
    assert err.splitlines()[-1].endswith("INFO fetched 3 papers")
    assert not terminal.ProgressLine.shown_now


def test_archive_without_a_database_says_there_is_nothing_yet(setup, capsys) -> None:
    cfg, _, _ = setup
    assert run(cfg, "archive") == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "nothing to show yet" in captured.err


def test_a_full_or_failing_disk_exits_75_whichever_module_met_it() -> None:
    full = OSError(errno.ENOSPC, "No space left on device", "/var/lib/digest/x")
    raw = translate(full)
    assert raw is not None and raw.exit_code == 75 and "/var/lib/digest/x" in str(raw)
    # a module that called it a config problem (78) does not get the last word
    try:
        raise OutputError("cannot create the outbox /o: [Errno 28] No space left") from full
    except OutputError as exc:
        wrapped = translate(exc)
    assert wrapped is not None and wrapped.exit_code == 75 and "/o" in str(wrapped)
    unwritable = translate(OutputError("cannot create the outbox /o"))
    assert unwritable is not None and unwritable.exit_code == 78
    assert translate(KeyError("a bug")) is None


def test_logging_into_a_closed_stderr_drops_the_lines_without_failing(capsys) -> None:
    class Closed:
        writes = 0

        def write(self, text: str) -> int:
            Closed.writes += 1
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

        def flush(self) -> None:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    handler = terminal._StderrHandler(Closed())  # type: ignore[arg-type]
    logger = logging.getLogger("tests.closed-stderr")
    logger.addHandler(handler)
    try:
        for n in range(3):
            logger.warning("line %d", n)
    finally:
        logger.removeHandler(handler)
    assert Closed.writes == 1  # tried once, then quiet
    assert "Logging error" not in capsys.readouterr().err


@pytest.mark.parametrize("where", ["smtp", "inbox"])
def test_check_refuses_a_username_without_a_password_naming_where_it_comes_from(
    arxiv: ArxivServer, write_config, monkeypatch, capsys, where: str
) -> None:
    for var in ("DIGEST_SMTP_PASSWORD", "DIGEST_IMAP_PASSWORD", "CREDENTIALS_DIRECTORY"):
        monkeypatch.delenv(var, raising=False)
    inbox = {"host": "127.0.0.1", "username": "reader"}
    extra = {"smtp": {"username": "digest"}} if where == "smtp" else {"inbox": inbox}
    cfg = write_config(config_dict(arxiv.url, **extra))
    assert run(cfg, "check") == 78
    err = capsys.readouterr().err
    setting, var, credential = {
        "smtp": ("settings.smtp.username 'digest'", "DIGEST_SMTP_PASSWORD", "smtp-password"),
        "inbox": ("settings.inbox.username 'reader'", "DIGEST_IMAP_PASSWORD", "imap-password"),
    }[where]
    assert f"{setting} has no password" in err
    assert f"${var}" in err and f"credential {credential}" in err
    monkeypatch.setenv(var, "s3cret")
    assert run(cfg, "check") == 0


def test_secret_rotate_keeps_every_earlier_key(setup, capsys) -> None:
    cfg, _, _ = setup
    assert run(cfg, "secret", "rotate") == 0  # the first key is made, then replaced
    assert run(cfg, "secret", "rotate") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith(f"{cfg.parent / 'reply-secret'}: a new reply key")
    assert "the 2 earlier keys kept there still unsubscribe" in out
    assert len((cfg.parent / "reply-secret").read_text().split()) == 3


def test_secret_rotate_with_a_credential_says_to_replace_it(setup, tmp_path, capsys, monkeypatch):
    cfg, _, _ = setup
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "reply-secret").write_text("a-credential-secret-of-enough-length\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert run(cfg, "secret", "rotate") == 2
    assert "the reply secret is the systemd credential" in capsys.readouterr().err
