"""settings.inbox in subscribers.yaml: defaults, the port by security, secrets, overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from digest.config import loading as config
from digest.config.loading import imap_default_port
from digest.errors import ConfigError


def test_default_port_follows_security() -> None:
    assert [imap_default_port(s) for s in ("tls", "starttls", "none")] == [993, 143, 143]


MINIMAL = "subscribers:\n  - email: a@example.org\n    keywords: [graph]\n"


def parse(text: str, env: dict[str, str] | None = None) -> config.Config:
    return config.parse(text, Path("/etc/digest/s.yaml"), env or {})


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(text, env)
    return list(info.value.problems)


def test_inbox_is_off_unless_configured() -> None:
    assert parse(MINIMAL).settings.inbox is None


def test_inbox_defaults_and_port_by_security() -> None:
    text = "settings:\n  inbox:\n    host: imap.example.org\n    username: digest\n"
    s = parse(text + MINIMAL).settings.inbox
    assert s is not None
    assert (s.port, s.security, s.folder, s.handled_folder) == (
        993,
        "tls",
        "INBOX",
        "digest-handled",
    )
    assert (s.poll_interval, s.ca_file) == (5.0, None)
    starttls = parse(text + "    security: starttls\n" + MINIMAL).settings.inbox
    assert starttls is not None and starttls.port == 143


def test_inbox_password_in_yaml_says_where_it_goes() -> None:
    (msg,) = problems(
        "settings:\n  inbox:\n    host: h\n    username: u\n    password: hunter2\n" + MINIMAL
    )
    assert msg.startswith("settings.inbox.password: the IMAP password never goes in this file")
    assert "DIGEST_IMAP_PASSWORD" in msg and "imap-password" in msg and "hunter2" not in msg


def test_inbox_password_from_environment_or_credential(tmp_path: Path) -> None:
    text = "settings:\n  inbox:\n    host: h\n    username: u\n" + MINIMAL
    (tmp_path / "imap-password").write_text("from-credential\n")
    from_env = parse(text, {"DIGEST_IMAP_PASSWORD": "s3cret"}).settings.inbox
    from_cred = parse(text, {"CREDENTIALS_DIRECTORY": str(tmp_path)}).settings.inbox
    assert from_env is not None and from_env.password == "s3cret"
    assert "s3cret" not in repr(from_env)
    assert from_cred is not None and from_cred.password == "from-credential"


def test_inbox_environment_overrides() -> None:
    env = {
        "DIGEST_IMAP_HOST": "mail.example.org",
        "DIGEST_IMAP_PORT": "10143",
        "DIGEST_IMAP_SECURITY": "none",
        "DIGEST_IMAP_USERNAME": "replies",
    }
    s = parse(MINIMAL, env).settings.inbox
    assert s is not None
    assert (s.host, s.port, s.security) == ("mail.example.org", 10143, "none")
    assert s.username == "replies"


def test_inbox_rejections_name_their_place() -> None:
    base = "settings:\n  inbox:\n    host: h\n    username: u\n"
    (short,) = problems(base + "    poll_interval: 0.5\n" + MINIMAL)
    assert short.startswith("settings.inbox.poll_interval:")
    (same,) = problems(base + "    handled_folder: INBOX\n" + MINIMAL)
    assert same.startswith("settings.inbox:") and "handled_folder must differ" in same
    (port,) = problems(
        MINIMAL, {"DIGEST_IMAP_HOST": "h", "DIGEST_IMAP_USERNAME": "u", "DIGEST_IMAP_PORT": "x"}
    )
    assert port.startswith("settings.inbox.port (from $DIGEST_IMAP_PORT):")


def test_the_owner_cannot_be_the_lists_own_address() -> None:
    # replies forwarded there would come back to digest and be dropped as its own
    base = 'settings:\n  smtp:\n    from: "Daily Papers <papers@digest.example.org>"\n'
    (msg,) = problems(base + "  owner: PAPERS@Digest.example.org\n" + MINIMAL)
    assert msg.startswith("settings:") and "the list's own address" in msg
    ok = parse(base + "  owner: ops@digest.example.org\n" + MINIMAL)
    assert ok.settings.owner == "ops@digest.example.org"
