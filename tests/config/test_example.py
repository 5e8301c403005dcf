"""The README's first command with the example subscribers.yaml, against loopback arXiv."""

from __future__ import annotations

import email
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, time, timedelta
from email import policy
from pathlib import Path

from digest.arxiv.feed import parse_page
from digest.matching.rules import contains_phrase
from tests.support.arxiv_server import ArxivServer, recent_entries
from tests.support.paths import ROOT


def test_example_config_dry_run_into_an_outbox(tmp_path: Path) -> None:
    shutil.copy(ROOT / "subscribers.yaml", tmp_path / "subscribers.yaml")
    header, entries = recent_entries(
        ["api_new_2026-04_all-testing_start-0_max-100.xml"], spacing=timedelta(minutes=20)
    )
    with ArxivServer(header, entries) as arxiv:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
        env.update(DIGEST_ARXIV_API_URL=arxiv.url, DIGEST_ARXIV_REQUEST_INTERVAL="0")
        proc = subprocess.run(
            [sys.executable, "-m", "digest", "once", "--dry-run", "--outbox", "outbox"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 0, proc.stderr
    assert "alice@example.org: wrote" in proc.stderr
    # bob is weekly on Mondays (07:00 UTC): new, he gets his first digest on his first Monday
    now = datetime.now(UTC)
    if now.weekday() == 0 and now.time() >= time(7):
        assert "bob@example.org: wrote" in proc.stderr
    else:
        assert "bob@example.org: not due today (weekly on mon)" in proc.stderr
    (eml,) = (tmp_path / "outbox").glob("*-alice@example.org.eml")
    msg = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    listed = re.findall(
        r"Abstract: https://arxiv.org/abs/(\S+)", msg.get_body(("plain",)).get_content()
    )
    papers = {p.id: p for p in parse_page(header + b"".join(entries) + b"</feed>").papers}
    assert listed
    for pid in listed:  # every paper truly matches alice's rules
        p = papers[pid]
        text = f"{p.title} {p.abstract}"
        assert any(contains_phrase(text, k) for k in ("reinforcement learning", "compiler"))
        assert not contains_phrase(text, "survey")
        assert any(c.startswith("cs.") for c in p.categories)
    assert not (tmp_path / "digest.json").exists()  # a dry run records nothing
