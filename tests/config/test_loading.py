"""subscribers.yaml: every rejection names its place; defaults, env overrides, paths."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import time
from pathlib import Path

import pytest

from digest.config import loading as config
from digest.errors import ConfigError
from tests.support.paths import ROOT


def parse(text: str, env: dict[str, str] | None = None, path: Path = Path("/etc/digest/s.yaml")):
    return config.parse(text, path, env or {})


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(text, env)
    return list(info.value.problems)


MINIMAL = "subscribers:\n  - email: a@example.org\n    keywords: [graph]\n"


def test_example_subscribers_yaml_is_valid_and_documents_the_defaults() -> None:
    cfg = config.load(ROOT / "subscribers.yaml", env={})
    s = cfg.settings
    assert s.send_at == time(7, 0) and s.timezone == "UTC"
    assert s.days == ("mon", "tue", "wed", "thu", "fri")
    assert s.lookback_days == 2 and s.max_papers_per_keyword == 25
    assert s.arxiv.request_interval == 3.0 and s.arxiv.page_size == 1000
    assert s.smtp.security == "none"
    assert cfg.subscribers[0].keywords == ("reinforcement learning", "compiler")
    assert s.database == config.default_database({})


def test_the_default_database_is_in_a_state_directory_never_the_current_folder(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    assert parse(MINIMAL, {"HOME": str(home)}).settings.database == (
        home / ".local" / "state" / "digest" / "digest.json"
    )
    xdg = {"HOME": str(home), "XDG_STATE_HOME": str(tmp_path / "xdg")}
    assert parse(MINIMAL, xdg).settings.database == tmp_path / "xdg" / "digest" / "digest.json"
    # systemd's StateDirectory= (the first, when the unit names several)
    unit = {**xdg, "STATE_DIRECTORY": "/var/lib/digest:/var/lib/other"}
    assert parse(MINIMAL, unit).settings.database == Path("/var/lib/digest/digest.json")
    # a relative XDG_STATE_HOME is invalid by the XDG spec: ignored
    odd = {"HOME": str(home), "XDG_STATE_HOME": "state"}
    assert parse(MINIMAL, odd).settings.database.is_relative_to(home)


def test_run_from_a_checkout_leaves_no_state_in_the_current_folder(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "subscribers.yaml").write_text((ROOT / "subscribers.yaml").read_text())
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGEST_", "XDG_"))}
    env.update(HOME=str(home), PYTHONPATH=str(ROOT))
    env.pop("STATE_DIRECTORY", None)
    reply = b"From: someone@example.org\r\nSubject: hello\r\n\r\nhi\r\n"
    done = subprocess.run(
        [sys.executable, "-m", "digest", "ingest"],
        input=reply,
        cwd=checkout,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in checkout.iterdir()) == ["subscribers.yaml"]
    assert (home / ".local" / "state" / "digest" / "reply-secret").exists()


def test_defaults_apply_when_settings_are_missing() -> None:
    cfg = parse(MINIMAL)
    assert cfg.settings.arxiv.api_url == "https://export.arxiv.org/api/query"
    assert cfg.settings.smtp.sender == "Daily Papers <papers@localhost>"
    assert cfg.subscribers[0].exclude == ()


def test_relative_database_resolves_against_the_config_folder(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "subscribers.yaml"
    path.parent.mkdir()
    path.write_text("settings:\n  database: state/db.json\n" + MINIMAL)
    cfg = config.load(path, env={})
    assert cfg.settings.database == path.parent.resolve() / "state" / "db.json"


def test_environment_overrides_settings() -> None:
    cfg = parse(
        MINIMAL,
        {
            "DIGEST_DATABASE": "/var/lib/digest/digest.json",
            "DIGEST_ARXIV_API_URL": "http://127.0.0.1:9/api/query",
            "DIGEST_ARXIV_REQUEST_INTERVAL": "0.5",
            "DIGEST_SMTP_HOST": "mail.example.org",
            "DIGEST_SMTP_PORT": "587",
            "DIGEST_SMTP_SECURITY": "starttls",
            "DIGEST_SMTP_USERNAME": "digest",
            "DIGEST_SMTP_PASSWORD": "s3cret",
            "DIGEST_SMTP_FROM": "Papers <papers@example.org>",
        },
    )
    s = cfg.settings
    assert s.database == Path("/var/lib/digest/digest.json")
    assert s.arxiv.api_url == "http://127.0.0.1:9/api/query"
    assert s.arxiv.request_interval == 0.5
    assert (s.smtp.host, s.smtp.port, s.smtp.security) == ("mail.example.org", 587, "starttls")
    assert s.smtp.username == "digest" and s.smtp.password == "s3cret"
    assert s.smtp.sender == "Papers <papers@example.org>"
    assert "s3cret" not in repr(s)


def test_bad_environment_override_names_the_variable() -> None:
    (msg,) = problems(MINIMAL, {"DIGEST_SMTP_PORT": "twenty-five"})
    assert msg.startswith("settings.smtp.port (from $DIGEST_SMTP_PORT):")


def test_password_from_systemd_credential(tmp_path: Path) -> None:
    (tmp_path / "smtp-password").write_text("from-credential\n")
    cfg = parse(MINIMAL, {"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert cfg.settings.smtp.password == "from-credential"


def test_password_in_yaml_says_where_the_password_goes() -> None:
    (msg,) = problems("settings:\n  smtp:\n    password: hunter2\n" + MINIMAL)
    assert msg.startswith("settings.smtp.password: the password does not belong in this file")
    assert "DIGEST_SMTP_PASSWORD" in msg and "credential smtp-password" in msg
    assert "hunter2" not in msg


def test_unquoted_send_at_says_to_quote_it() -> None:
    # YAML 1.1 reads 7:00 as 7*60 = 420
    (msg,) = problems("settings:\n  send_at: 7:00\n" + MINIMAL)
    assert msg == (
        "settings.send_at: YAML read an unquoted 7:00 as the number 420; "
        'quote the time: send_at: "07:00"'
    )


@pytest.mark.parametrize("key", ["keywords", "exclude", "authors", "categories"])
def test_a_single_string_is_one_item_not_a_list_of_letters(key: str) -> None:
    value = "cs.LG" if key == "categories" else "graph neural network"
    text = "subscribers:\n  - email: a@example.org\n    keywords: [graph]\n"
    text = text.replace("    keywords: [graph]\n", "") if key == "keywords" else text
    cfg = parse(text + f"    {key}: {value}\n")
    assert getattr(cfg.subscribers[0], key) == (value,)


@pytest.mark.parametrize(
    ("given", "day"), [("mon", "mon"), ("Monday", "mon"), ("SUNDAY", "sun"), ("thu", "thu")]
)
def test_weekday_takes_short_and_full_names(given: str, day: str) -> None:
    cfg = parse(MINIMAL + f"    frequency: weekly\n    weekday: {given}\n")
    assert cfg.subscribers[0].weekday == day


@pytest.mark.parametrize("given", ["mo", "mondays", "monkey", "lundi"])
def test_weekday_rejects_words_that_only_start_like_one(given: str) -> None:
    (msg,) = problems(MINIMAL + f"    frequency: weekly\n    weekday: {given}\n")
    assert f"{given!r} is not a weekday" in msg


def test_config_path_order() -> None:
    assert config.resolve_path("x.yaml", {"DIGEST_CONFIG": "y.yaml"}) == Path("x.yaml")
    assert config.resolve_path(None, {"DIGEST_CONFIG": "y.yaml"}) == Path("y.yaml")
    assert config.resolve_path(None, {}) == Path("subscribers.yaml")


def test_yaml_syntax_error_has_line_and_column() -> None:
    (msg,) = problems("subscribers:\n  - email: a@example.org\n    keywords: [graph\n")
    assert msg.startswith("line 4, column 1: YAML syntax error")


def test_duplicate_yaml_key_is_rejected_with_its_line() -> None:
    (msg,) = problems(
        "subscribers:\n  - email: a@example.org\n    email: b@example.org\n    keywords: [x]\n"
    )
    assert msg.startswith("line 3, column 5") and "duplicate key 'email'" in msg


def test_unknown_key_names_its_place() -> None:
    (msg,) = problems(MINIMAL + "    keyword: [typo]\n")
    assert msg.startswith("subscribers[0].keyword (a@example.org): unknown key")


@pytest.mark.parametrize("address", ["not-an-address", "a@", "@example.org", "a b@example.org"])
def test_invalid_address_is_rejected(address: str) -> None:
    (msg,) = problems(f"subscribers:\n  - email: '{address}'\n    keywords: [x]\n")
    assert msg.startswith("subscribers[0].email:") and "not an email address" in msg


def test_address_with_crlf_is_rejected() -> None:
    (msg,) = problems(
        'subscribers:\n  - email: "a@example.org\\r\\nBcc: evil@example.net"\n    keywords: [x]\n'
    )
    assert msg.startswith("subscribers[0].email:") and "line break" in msg


def test_owner_is_an_address_and_unset_by_default() -> None:
    assert parse(MINIMAL).settings.owner is None
    cfg = parse("settings:\n  owner: ops@example.org\n" + MINIMAL)
    assert cfg.settings.owner == "ops@example.org"
    (msg,) = problems("settings:\n  owner: ops\n" + MINIMAL)
    assert msg.startswith("settings.owner:") and "not an email address" in msg


def test_sender_with_crlf_is_rejected() -> None:
    (msg,) = problems('settings:\n  smtp:\n    from: "P <p@example.org>\\nBcc: x@y.z"\n' + MINIMAL)
    assert msg.startswith("settings.smtp.from:") and "line break" in msg


def test_duplicate_subscribers_are_rejected() -> None:
    msgs = problems(MINIMAL + "  - email: A@example.org\n    keywords: [other]\n")
    assert msgs == [
        "subscribers[1].email: A@example.org is already subscribers[0]; "
        "merge their keywords into one entry"
    ]


def test_empty_keyword_list_is_rejected() -> None:
    (msg,) = problems("subscribers:\n  - email: a@example.org\n    keywords: []\n")
    assert msg == "subscribers[0].keywords (a@example.org): needs at least one keyword"


def test_missing_keywords_is_rejected() -> None:
    (msg,) = problems("subscribers:\n  - email: a@example.org\n")
    assert msg.startswith("subscribers[0].keywords (a@example.org): Field required")


@pytest.mark.parametrize(
    "keyword, why",
    [
        ('quantum "gravity"', "'\"'"),
        ("graph (neural)", "'('"),
        ("ti:graph", "':'"),
        ("graphs OR trees", "operator 'OR'"),
        ("AND", "operator 'AND'"),
        ("a ANDNOT b", "operator 'ANDNOT'"),
        ("---", "no letters or digits"),
    ],
)
def test_keywords_that_would_break_the_query_are_rejected(keyword: str, why: str) -> None:
    (msg,) = problems(f"subscribers:\n  - email: a@example.org\n    keywords: ['{keyword}']\n")
    assert msg.startswith("subscribers[0].keywords (a@example.org):") and why in msg


def test_lower_case_and_or_inside_a_phrase_are_fine() -> None:
    cfg = parse("subscribers:\n  - email: a@example.org\n    keywords: [search and rescue]\n")
    assert cfg.subscribers[0].keywords == ("search and rescue",)


def test_every_problem_is_reported_at_once() -> None:
    msgs = problems(
        "settings:\n  send_at: '7am'\n  timezone: Mars/Olympus\n  days: [funday]\n"
        "subscribers:\n  - email: bad\n    keywords: []\n  - email: b@example.org\n"
        "    keywords: [x]\n    categories: ['CS LG']\n"
    )
    places = [m.split(":")[0] for m in msgs]
    assert places == [
        "settings.send_at",
        "settings.timezone",
        "settings.days[0]",
        "subscribers[0].email",
        "subscribers[0].keywords (bad)",
        "subscribers[1].categories[0] (b@example.org)",
    ]


def test_missing_file_says_how_to_point_at_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        config.load(tmp_path / "nope.yaml", env={})
    assert "file not found" in str(info.value) and "pass --config" in str(info.value)


def test_missing_file_given_by_config_does_not_say_pass_config(tmp_path: Path) -> None:
    origin = config.path_origin(str(tmp_path / "nope.yaml"), {})
    with pytest.raises(ConfigError) as info:
        config.load(tmp_path / "nope.yaml", env={}, origin=origin)
    assert "check the path given by --config" in str(info.value)
    assert "pass --config" not in str(info.value)


def test_empty_file_and_wrong_top_level() -> None:
    assert "empty" in problems("")[0]
    assert "top level must be a mapping" in problems("- a\n- b\n")[0]


def test_cadence_and_per_subscriber_options() -> None:
    cfg = parse(
        MINIMAL + "    frequency: weekly\n    weekday: Friday\n    include_revisions: true\n"
        "    send_empty: true\n    max_papers_per_keyword: 5\n"
    )
    s = cfg.subscribers[0]
    assert (s.frequency, s.weekday, s.include_revisions, s.send_empty) == (
        "weekly",
        "fri",
        True,
        True,
    )
    assert s.max_papers_per_keyword == 5


def test_weekly_needs_a_weekday_and_daily_takes_none() -> None:
    (msg,) = problems(MINIMAL + "    frequency: weekly\n")
    assert msg == "subscribers[0] (a@example.org): a weekly subscriber needs weekday: (mon ... sun)"
    (msg,) = problems(MINIMAL + "    weekday: mon\n")
    assert msg.endswith("weekday: only applies to frequency: weekly")
    (msg,) = problems(MINIMAL + "    frequency: monthly\n")
    assert msg.startswith("subscribers[0].frequency (a@example.org): 'monthly'")


def test_smtp_connections_is_bounded() -> None:
    cfg = parse("settings:\n  smtp:\n    connections: 3\n" + MINIMAL)
    assert cfg.settings.smtp.connections == 3
    (msg,) = problems("settings:\n  smtp:\n    connections: 50\n" + MINIMAL)
    assert msg.startswith("settings.smtp.connections: Input should be less than or equal to 8")


def test_semantic_is_off_by_default_and_a_yes_or_no() -> None:
    assert parse(MINIMAL).settings.semantic is False
    assert parse("settings:\n  semantic: true\n" + MINIMAL).settings.semantic is True
    (msg,) = problems("settings:\n  semantic: maybe\n" + MINIMAL)
    assert msg.startswith("settings.semantic:")
