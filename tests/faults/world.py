"""One scenario's world: a fault arXiv, a fault SMTP server, a config, and `digest` processes.

Everything digest is asked to do goes through ``python -m digest`` as a
subprocess with ``--config`` and the documented ``DIGEST_*`` overrides; the
servers hold the only hooks (they can kill or signal the process at any
request or SMTP event).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from digest.config.loading import load as load_config
from digest.models import address_key
from tests.faults import invariants
from tests.faults.arxiv import ArxivScript, FaultArxiv
from tests.faults.smtp import FaultSmtp, SmtpScript
from tests.support.arxiv_server import load_entries, make_entry, redate

ALL_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
CORPUS = (
    "api_new_2026-04_all-testing_start-0_max-10.xml",
    "api_new_2025-11_search_electron-AND-proton_10-entries_links-without-rel.xml",
    "api_legacy_2017-08_cat-OR-query_10-entries.xml",
)
# Four readers with keywords, an exclusion and categories that split the
# corpus differently; every one gets mail, none gets everything.
READERS: list[dict[str, Any]] = [
    {"email": "alice@example.org", "name": "Alice", "keywords": ["deep learning", "proton"]},
    {"email": "bob@example.org", "keywords": ["metamorphic testing", "electron"]},
    {"email": "carol@example.org", "keywords": ["gui", "neural network"], "categories": ["cs"]},
    {"email": "dave@example.org", "keywords": ["testing"], "exclude": ["gui"]},
]
LOOKBACK_DAYS = 2
SPACING = timedelta(hours=2)  # 30 entries over 60 hours: the oldest are outside the lookback


def corpus(now: datetime | None = None) -> tuple[bytes, list[bytes]]:
    """The recorded entries re-dated 1 h, 3 h, ... 59 h ago (no paper near the lookback edge)."""
    now = now or datetime.now(UTC)
    header, entries = load_entries(CORPUS)
    first = now - timedelta(hours=1)
    return header, [redate(e, first - SPACING * i) for i, e in enumerate(entries)]


def fresh_entries(now: datetime | None = None) -> list[bytes]:
    """Three new submissions that match alice, bob and dave (pushed in by the "grow" fault)."""
    now = now or datetime.now(UTC)
    t = now - timedelta(minutes=20)
    return [
        make_entry("2611.90001", "A proton radius update", "We measure the proton.", published=t),
        make_entry("2611.90002", "Electron beams", "An electron study.", published=t),
        make_entry("2611.90003", "Testing compilers", "Random testing.", published=t),
    ]


def foreign_entries(now: datetime | None = None) -> list[bytes]:
    """What an answer that ignores the query returns: matching words, but weeks old."""
    now = now or datetime.now(UTC)
    t = now - timedelta(days=20)
    return [
        make_entry(f"2610.8000{i}", f"Old proton testing paper {i}", "proton testing", published=t)
        for i in range(5)
    ]


@dataclass
class Run:
    args: tuple[str, ...]
    code: int | None
    stdout: str
    stderr: str
    seconds: float
    signalled: bool = False

    def __str__(self) -> str:
        return f"digest {' '.join(self.args)} -> {self.code} in {self.seconds:.1f} s\n{self.stderr}"


@dataclass
class World:
    """``with World(tmp) as w: w.once(); w.check()``."""

    tmp: Path
    readers: list[dict[str, Any]] = field(default_factory=lambda: [dict(r) for r in READERS])
    settings: dict[str, Any] = field(default_factory=dict)
    env_extra: dict[str, str] = field(default_factory=dict)
    smtp_tls: Any = None
    runs: list[Run] = field(default_factory=list)
    first_run: datetime | None = None
    settled: Run | None = None  # `digest status` after the scenario, taken in its thread

    def __post_init__(self) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)
        header, entries = corpus()
        self.script = ArxivScript(header, entries, foreign=foreign_entries(), fresh=fresh_entries())
        self.arxiv = FaultArxiv(self.script)
        self.smtp_script = SmtpScript()
        self.smtp = FaultSmtp(self.smtp_script, tls_context=self.smtp_tls)
        self.db = self.tmp / "state" / "digest.json"
        self.cfg = self.tmp / "subscribers.yaml"
        self.proc: subprocess.Popen[str] | None = None
        self.on_start: Callable[[], None] | None = None  # called once the process runs
        self.prefix: list[str] = []  # e.g. setpriv, to run digest with fewer privileges
        self._lock = threading.Lock()

    # -- set-up ----------------------------------------------------------------

    def __enter__(self) -> World:
        self.arxiv.__enter__()
        self.smtp.__enter__()
        self.write_config()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.kill(signal.SIGKILL)
        self.smtp.__exit__(*exc)
        self.arxiv.__exit__(*exc)

    def config_data(self) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "send_at": (datetime.now(UTC) + timedelta(hours=1)).strftime("%H:%M:%S"),
            "days": ALL_DAYS,
            "lookback_days": LOOKBACK_DAYS,
            "max_papers_per_keyword": 200,
            "arxiv": {"timeout": self.script.client_timeout, "max_retries": 2, "page_size": 10},
            "smtp": {"from": "Daily Papers <papers@digest.test>", "timeout": 3},
        }
        for key, value in self.settings.items():
            if isinstance(value, dict) and isinstance(settings.get(key), dict):
                settings[key] = {**settings[key], **value}
            else:
                settings[key] = value
        return {"settings": settings, "subscribers": self.readers}

    def write_config(self) -> None:
        self.cfg.write_text(yaml.safe_dump(self.config_data(), sort_keys=False), encoding="utf-8")

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGEST_", "NOTIFY_"))}
        env.update(
            PYTHONUNBUFFERED="1",
            DIGEST_ARXIV_API_URL=self.arxiv.url,
            DIGEST_ARXIV_REQUEST_INTERVAL="0",
            DIGEST_SMTP_HOST="127.0.0.1",
            DIGEST_SMTP_PORT=str(self.smtp.port),
            DIGEST_DATABASE=str(self.db),
        )
        env.pop("JOURNAL_STREAM", None)
        env.update(self.env_extra)
        return env

    # -- processes ---------------------------------------------------------------

    def popen(self, *args: str, stderr: Any = subprocess.PIPE) -> subprocess.Popen[str]:
        if self.first_run is None:
            self.first_run = datetime.now(UTC)
        cmd = [
            *self.prefix,
            sys.executable,
            "-m",
            "digest",
            args[0],
            "--config",
            str(self.cfg),
            *args[1:],
        ]
        proc = subprocess.Popen(
            cmd,
            cwd=self.tmp,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        with self._lock:
            self.proc = proc
        if self.on_start is not None:
            self.on_start()
        return proc

    def run(self, *args: str, timeout: float = 90) -> Run:
        """Run ``digest ARGS`` to the end (a server hook may kill it on the way)."""
        t0 = time.monotonic()
        proc = self.popen(*args)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"digest {' '.join(args)} hung for {timeout} s:\n{err}") from None
        finally:
            with self._lock:
                self.proc = None
        run = Run(args, proc.returncode, out, err, time.monotonic() - t0, proc.returncode < 0)
        self.runs.append(run)
        return run

    def once(self, *args: str, timeout: float = 90) -> Run:
        return self.run("once", *args, timeout=timeout)

    def kill(self, sig: int = signal.SIGKILL) -> bool:
        """Signal the running digest process (called from the servers' threads)."""
        with self._lock:
            proc = self.proc
        if proc is None or proc.poll() is not None:
            return False
        os.kill(proc.pid, sig)
        return True

    def daemon(self, log: Path | None = None) -> subprocess.Popen[str]:
        """``digest run``, its log in ``log`` (it catches up the owed slot at once)."""
        log = log or self.tmp / "daemon.log"
        with log.open("w") as f:
            return self.popen("run", stderr=f)

    def stop(self, proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, float]:
        """Signal a daemon; its exit code and how long it took (killed after 10 s)."""
        t0 = time.monotonic()
        proc.send_signal(sig)
        try:
            code = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = -1
        return code, time.monotonic() - t0

    def status(self) -> Run:
        return self.run("status", timeout=60)

    def settle(self) -> World:
        """Read the database back once the scenario is over (``check`` then uses it)."""
        self.settled = self.status()
        return self

    # -- the promise ---------------------------------------------------------------

    def expected(self) -> dict[str, set[str]]:
        config = load_config(self.cfg, self.env())
        papers = invariants.papers_in(self.script.header, self.script.ever)
        assert self.first_run is not None
        return invariants.expected(config, papers, self.first_run)

    def check(self, *, max_repeated: int = 0, complete: bool = True) -> invariants.Verdict:
        """The invariants: delivered once, nothing else, store readable, nothing pending."""
        want = self.expected()
        verdict = invariants.check_deliveries(
            self.smtp_script.accepted, want, max_repeated=max_repeated, complete=complete
        )
        if self.db.exists():
            json.loads(self.db.read_text(encoding="utf-8"))  # readable, whatever happened
        status = self.settled or self.status()
        assert status.code == 0, str(status)
        counts = invariants.status_counts(status.stdout)
        if complete:
            assert counts == {r: (len(ids), 0) for r, ids in want.items()}, status.stdout
        return verdict

    def messages_to(self, reader: str) -> list[set[str]]:
        return [
            invariants.ids_in(a)
            for a in self.smtp_script.accepted
            if [address_key(r) for r in a.rcpt_tos] == [address_key(reader)]
        ]


@contextlib.contextmanager
def world(tmp: Path, **kwargs: Any) -> Iterator[World]:
    with World(tmp, **kwargs) as w:
        yield w

