"""Hostile subscribers.yaml: every mutation is exit 78 with a message (or a valid config), never a
traceback, never a hang.

Most mutations run in-process through ``digest.config.loading.load`` (hypothesis,
hundreds of files); a few of the nastiest go through the real command.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.config.loading import load
from digest.errors import ConfigError
from tests.faults.world import READERS
from tests.support.paths import ROOT

VALID: dict[str, Any] = {
    "settings": {
        "send_at": "07:00",
        "timezone": "Europe/Berlin",
        "days": ["mon", "tue"],
        "lookback_days": 2,
        "max_papers_per_keyword": 25,
        "database": "digest.json",
        "arxiv": {"request_interval": 3, "page_size": 200, "timeout": 30, "categories": ["cs"]},
        "smtp": {"host": "localhost", "port": 25, "security": "none", "from": "P <p@x.org>"},
    },
    "subscribers": [
        {**READERS[0], "frequency": "weekly", "weekday": "mon", "authors": ["Yann LeCun"]},
        *READERS[1:],
    ],
}
PLACES = [
    ("settings", k) for k in VALID["settings"] if k not in ("arxiv", "smtp")
] + [
    ("settings", "arxiv", k) for k in VALID["settings"]["arxiv"]
] + [("settings", "smtp", k) for k in VALID["settings"]["smtp"]] + [
    ("subscribers", 0, k) for k in VALID["subscribers"][0]
] + [("subscribers", 2, k) for k in VALID["subscribers"][2]] + [
    ("settings",), ("subscribers",), ("subscribers", 1),
]  # fmt: skip

HOSTILE_CHARS = "\x00\x01\x07\x08\t\x0b\x0c\r\x1b\x7f\x85\u2028\u2029\u202e\u200f\ufeff\ufffe"
texts = st.text(
    alphabet=st.one_of(st.characters(blacklist_categories=("Cs",)), st.sampled_from(HOSTILE_CHARS)),
    max_size=40,
)
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
    st.lists(texts, max_size=8),
    st.dictionaries(texts, texts, max_size=3),
    st.sampled_from(["x" * 100_000, ["kw"] * 5_000, [[["deep"]]], {"email": None}]),
)

EXAMPLES = {"count": 0}


def judge(path: Path, seconds: float = 10.0) -> None:
    """The contract for any file: a Config, or a ConfigError with a short, placed message."""
    EXAMPLES["count"] += 1
    t0 = time.monotonic()
    try:
        load(path, {})
    except ConfigError as exc:
        text = str(exc)
        assert text.startswith(f"{path}: ") and exc.problems, text
        assert len(text) < 20_000 + 200 * len(exc.problems), "an unreadably long message"
    assert time.monotonic() - t0 < seconds, "loading took too long"


def put(data: dict[str, Any], place: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(data)
    node: Any = data
    for key in place[:-1]:
        node = node[key]
    node[place[-1]] = value
    return data


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(place=st.sampled_from(PLACES), value=values)
def test_any_value_anywhere_is_a_config_or_a_placed_error(tmp_path, place, value) -> None:
    path = tmp_path / "subscribers.yaml"
    path.write_text(yaml.safe_dump(put(VALID, place, value), allow_unicode=True), "utf-8")
    judge(path)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    edits=st.lists(
        st.tuples(
            st.floats(0, 1),
            st.integers(0, 3),
            st.text(
                alphabet=st.sampled_from(list(HOSTILE_CHARS) + list("&*!%:-{}[]\"'|>#?@`\n ü🙂")),
                max_size=4,
            ),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_any_edit_of_the_text_is_a_config_or_a_placed_error(tmp_path, edits) -> None:
    text = yaml.safe_dump(VALID, sort_keys=False)
    for where, cut, insert in edits:
        i = int(where * len(text))
        text = text[:i] + insert + text[i + cut :]
    path = tmp_path / "subscribers.yaml"
    path.write_text(text, "utf-8", errors="surrogatepass")
    judge(path)


def bomb(depth: int = 9) -> str:
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"l{i}: &l{i} [{','.join([f'*l{i - 1}'] * 9)}]" for i in range(1, depth)]
    return "\n".join(lines) + (
        "\nsubscribers:\n  - email: a@example.org\n"
        f"    keywords: *l{depth - 1}\n    name: *l{depth - 1}\n    frequency: *l{depth - 1}\n"
    )


SPECIAL: dict[str, bytes] = {
    "alias bomb (9**9 leaves)": bomb().encode(),
    "duplicate top-level key": b"subscribers: []\nsubscribers: []\n",
    "duplicate nested key": b"subscribers:\n  - email: a@example.org\n    email: b@example.org\n"
    b"    keywords: [x]\n",
    "duplicate via merge key": b"base: &b {email: a@example.org}\nsubscribers:\n"
    b"  - <<: *b\n    email: a@example.org\n    keywords: [x]\n",
    "python object tag": b"subscribers: !!python/object/apply:os.system ['true']\n",
    "nested 5000 deep": b"subscribers: " + b"[" * 5000 + b"]" * 5000,
    "list as a key": b"? [a, b]\n: c\nsubscribers: []\n",
    "not UTF-8": b"subscribers:\n  - email: \xff\xfe@example.org\n    keywords: [x]\n",
    "NUL bytes": b"subscribers:\x00\n  - email: a@example.org\n",
    "tabs for indentation": b"subscribers:\n\t- email: a@example.org\n\t  keywords: [x]\n",
    "empty": b"",
    "only a comment": b"# nothing\n",
    "a top-level list": b"- a\n- b\n",
    "a header-injecting name": b"subscribers:\n  - email: a@example.org\n    keywords: [x]\n"
    b'    name: "Eve\\r\\nBcc: victim@example.org"\n',
    "an address with a newline": b'subscribers:\n  - email: "a@example.org\\nb@evil.test"\n'
    b"    keywords: [x]\n",
}


def test_a_bom_and_crlf_line_ends_are_fine(tmp_path) -> None:
    path = tmp_path / "subscribers.yaml"
    path.write_bytes(
        b"\xef\xbb\xbfsubscribers:\r\n  - email: a@example.org\r\n    keywords: [x]\r\n"
    )
    assert load(path, {}).subscribers[0].email == "a@example.org"


BIG: dict[str, bytes] = {
    "10 MB in one scalar": b"subscribers:\n  - email: a@example.org\n    keywords: [x]\n"
    b"    name: " + b"n" * 10_000_000 + b"\n",
    "10 MB of keywords": b"subscribers:\n  - email: a@example.org\n    keywords:\n"
    + b"".join(b"      - keyword number %d\n" % i for i in range(400_000)),
}


@pytest.mark.parametrize("name", BIG, ids=list(BIG))
def test_a_10_mb_file_loads_or_is_refused_without_hanging(tmp_path, name) -> None:
    path = tmp_path / "subscribers.yaml"
    path.write_bytes(BIG[name])
    assert path.stat().st_size >= 10_000_000
    proc = subprocess.run(
        [sys.executable, "-m", "digest", "check", "--config", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,  # a hang guard
    )
    assert proc.returncode in (0, 78) and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert len(proc.stderr) < 20_000


@pytest.mark.parametrize("name", SPECIAL, ids=list(SPECIAL))
def test_a_nasty_file_is_refused_with_78_in_process(tmp_path, name) -> None:
    path = tmp_path / "subscribers.yaml"
    path.write_bytes(SPECIAL[name])
    with pytest.raises(ConfigError):
        load(path, {})
    judge(path, seconds=30)


CLI = ["alias bomb (9**9 leaves)", "nested 5000 deep", "list as a key", "not UTF-8"]
CLI += ["duplicate nested key", "a header-injecting name"]


@pytest.mark.parametrize("name", CLI, ids=CLI)
def test_digest_check_exits_78_with_a_message_never_a_traceback(tmp_path, name) -> None:
    path = tmp_path / "subscribers.yaml"
    path.write_bytes(SPECIAL[name])
    proc = subprocess.run(
        [sys.executable, "-m", "digest", "check", "--config", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,  # a hang fails the test instead of the suite
    )
    assert proc.returncode == 78, proc.stderr[-2000:]
    assert proc.stderr.startswith(f"digest: {path}: ") and "Traceback" not in proc.stderr
    assert len(proc.stderr) < 20_000


def test_ten_thousand_readers_load_in_seconds(tmp_path) -> None:
    subs = [
        {"email": f"reader{i}@example.org", "name": f"Reader {i}", "keywords": [f"topic {i % 500}"]}
        for i in range(10_000)
    ]
    path = tmp_path / "subscribers.yaml"
    path.write_text(yaml.safe_dump({"subscribers": subs}), "utf-8")
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "digest", "check", "--config", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    seconds = time.monotonic() - t0
    print(f"\ndigest check with 10,000 readers: {seconds:.1f} s")
    assert proc.returncode == 0 and "OK: 10000 subscribers" in proc.stdout, proc.stderr
    assert seconds < 30  # a hang guard, not a benchmark
