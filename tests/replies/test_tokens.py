"""Command tokens and the reply secret: who may act for whom."""

from __future__ import annotations

import base64
import stat
import threading
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.errors import ConfigError, UsageError
from digest.replies.tokens import (
    RETIRED_NAME,
    SECRET_NAME,
    TOKEN_LENGTH,
    Proof,
    ReplySecret,
    _base32,
    command_token,
    load_secret,
    rotate_secret,
    token_matches,
    verify,
)

SECRET = ReplySecret(b"test-secret-0123456789abcdef")
OTHER = ReplySecret(b"another-secret-0123456789abcd")
ISSUED = date(2026, 12, 3)
# as the digests mailed before tokens carried their day wrote it (tests/fixtures/mail)
UNDATED = "P5PCJFT6XCMTR7T3EINXVK6K4M"  # unsubscribe bob@example.com under SECRET


def test_token_is_128_bits_of_base32_without_padding() -> None:
    token = command_token(SECRET, "alice@example.org", "unsubscribe", issued=ISSUED)[:-3]
    assert len(token) == 26
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


def test_token_matches_what_it_was_made_for() -> None:
    token = command_token(SECRET, "alice@example.org", "more", "2202.12139", issued=ISSUED)
    assert token_matches(SECRET, "alice@example.org", "more", "2202.12139", token)


def test_token_survives_a_client_that_folds_case() -> None:
    token = command_token(SECRET, "Alice@Example.org", "unsubscribe", issued=ISSUED)
    assert token_matches(SECRET, "ALICE@EXAMPLE.ORG", "UNSUBSCRIBE", "", token.lower())


def test_token_for_another_address_does_not_match() -> None:
    token = command_token(SECRET, "alice@example.org", "unsubscribe", issued=ISSUED)
    assert not token_matches(SECRET, "bob@example.org", "unsubscribe", "", token)


def test_token_for_another_action_does_not_match() -> None:
    token = command_token(SECRET, "alice@example.org", "pause", issued=ISSUED)
    assert not token_matches(SECRET, "alice@example.org", "unsubscribe", "", token)


def test_token_for_another_paper_does_not_match() -> None:
    token = command_token(SECRET, "alice@example.org", "less", "2202.12139", issued=ISSUED)
    assert not token_matches(SECRET, "alice@example.org", "less", "2202.12140", token)


def test_token_from_another_secret_does_not_match() -> None:
    token = command_token(OTHER, "alice@example.org", "unsubscribe", issued=ISSUED)
    assert not token_matches(SECRET, "alice@example.org", "unsubscribe", "", token)


@given(st.text(max_size=40))
def test_arbitrary_token_text_never_raises_and_never_matches(token: str) -> None:
    assert not token_matches(SECRET, "alice@example.org", "unsubscribe", "", token)


def test_secret_shorter_than_16_bytes_is_refused() -> None:
    with pytest.raises(ValueError):
        ReplySecret(b"short")


def test_secret_is_not_in_its_repr() -> None:
    assert "test-secret" not in repr(SECRET)


def test_first_use_creates_a_secret_file_readable_by_the_owner_only(tmp_path: Path) -> None:
    secret = load_secret(tmp_path, {})
    path = tmp_path / SECRET_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().strip() == secret.key
    assert len(secret.key) == 64  # 32 random bytes, hex


def test_later_uses_read_the_same_secret(tmp_path: Path) -> None:
    assert load_secret(tmp_path, {}) == load_secret(tmp_path, {})


def test_creating_the_secret_leaves_no_temporary_file(tmp_path: Path) -> None:
    load_secret(tmp_path, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == [SECRET_NAME, RETIRED_NAME]


def test_processes_racing_to_create_the_secret_all_get_the_same_one(tmp_path: Path) -> None:
    results: list[bytes] = []
    barrier = threading.Barrier(8)

    def load() -> None:
        barrier.wait()
        results.append(load_secret(tmp_path, {}).key)

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and len(set(results)) == 1


def test_a_systemd_credential_wins_over_the_state_file(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / SECRET_NAME).write_bytes(b"credential-secret-0123456789\n")
    secret = load_secret(tmp_path / "state", {"CREDENTIALS_DIRECTORY": str(creds)})
    assert secret.key == b"credential-secret-0123456789"
    assert not (tmp_path / "state" / SECRET_NAME).exists()


def test_a_secret_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / SECRET_NAME
    path.write_bytes(b"0123456789abcdef0123456789abcdef")
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_secret(tmp_path, {})


def test_a_truncated_secret_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / SECRET_NAME
    path.write_bytes(b"abc\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="shorter"):
        load_secret(tmp_path, {})


@given(st.binary(min_size=16, max_size=16))
def test_the_fast_base32_is_rfc_4648_base32(digest: bytes) -> None:
    assert _base32(digest) == base64.b32encode(digest).decode("ascii").rstrip("=")


# -- the day a token was issued -----------------------------------------------------------


def test_a_token_says_the_day_it_was_issued() -> None:
    token = command_token(SECRET, "alice@example.org", "pause", issued=ISSUED)
    assert verify(SECRET, "alice@example.org", "pause", "", token) == Proof(issued=ISSUED)


def test_a_token_with_another_day_does_not_match() -> None:
    token = command_token(SECRET, "alice@example.org", "pause", issued=ISSUED)
    later = command_token(SECRET, "alice@example.org", "pause", issued=date(2027, 3, 1))
    assert token[:-3] != later[:-3]  # the day is signed, not only written down
    assert verify(SECRET, "alice@example.org", "pause", "", token[:-3] + later[-3:]) is None


def test_an_undated_token_from_before_days_still_verifies_as_undated() -> None:
    assert verify(SECRET, "bob@example.com", "unsubscribe", "", UNDATED) == Proof(issued=None)
    assert verify(SECRET, "bob@example.com", "pause", "", UNDATED) is None


def test_a_token_is_still_short() -> None:
    token = command_token(SECRET, "alice@example.org", "unsubscribe", issued=ISSUED)
    assert len(token) == TOKEN_LENGTH == 29  # 128 bits of MAC and three letters of day


# -- keys that rotate --------------------------------------------------------------------------

NEW = ReplySecret(b"a-newer-secret-0123456789abcdef", retired=(SECRET.key,))


def test_a_token_made_with_a_retired_key_verifies_as_retired() -> None:
    token = command_token(SECRET, "alice@example.org", "unsubscribe", issued=ISSUED)
    assert verify(NEW, "alice@example.org", "unsubscribe", "", token) == Proof(ISSUED, retired=True)
    fresh = command_token(NEW, "alice@example.org", "unsubscribe", issued=ISSUED)
    assert verify(NEW, "alice@example.org", "unsubscribe", "", fresh) == Proof(ISSUED)


def test_new_tokens_are_made_with_the_current_key_only() -> None:
    token = command_token(NEW, "alice@example.org", "pause", issued=ISSUED)
    assert verify(SECRET, "alice@example.org", "pause", "", token) is None


def keys_of(secret: ReplySecret) -> tuple[bytes, set[bytes]]:
    return secret.key, set(secret.retired)


def test_the_secret_file_holds_the_current_key_first_and_the_retired_ones_below(
    tmp_path: Path,
) -> None:
    path = tmp_path / SECRET_NAME
    path.write_bytes(b"current-key-0123456789abcdef\nolder-key-0123456789abcdef\n")
    path.chmod(0o600)
    assert keys_of(load_secret(tmp_path, {})) == (
        b"current-key-0123456789abcdef",
        {b"older-key-0123456789abcdef"},
    )


def test_rotate_makes_a_new_current_key_and_keeps_the_old_one_retired(tmp_path: Path) -> None:
    before = load_secret(tmp_path, {})
    assert rotate_secret(tmp_path, {}) == 1
    after = load_secret(tmp_path, {})
    assert after.key != before.key and before.key in after.retired
    assert stat.S_IMODE((tmp_path / SECRET_NAME).stat().st_mode) == 0o600
    rotate_secret(tmp_path, {})
    assert {before.key, after.key} <= set(load_secret(tmp_path, {}).retired)


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_secret_file_deleted_or_replaced_by_hand_keeps_its_key_retired(
    tmp_path: Path, how: str
) -> None:
    before = load_secret(tmp_path, {})  # a cycle signed its links with it
    path = tmp_path / SECRET_NAME
    path.unlink()
    if how == "replaced":
        path.write_bytes(b"typed-in-by-hand-0123456789abcdef\n")
        path.chmod(0o600)
    after = load_secret(tmp_path, {})
    assert after.key != before.key and before.key in after.retired


def credential(tmp_path: Path, key: bytes) -> dict[str, str]:
    creds = tmp_path / "creds"
    creds.mkdir(exist_ok=True)
    (creds / SECRET_NAME).write_bytes(key)
    return {"CREDENTIALS_DIRECTORY": str(creds)}


def test_switching_to_the_credential_keeps_the_files_key_retired(tmp_path: Path) -> None:
    state = tmp_path / "state"
    before = load_secret(state, {})
    env = credential(tmp_path, b"credential-secret-0123456789\n")
    assert keys_of(load_secret(state, env)) == (b"credential-secret-0123456789", {before.key})


def test_a_replaced_credential_keeps_the_old_one_retired(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    first = load_secret(state, credential(tmp_path, b"\x00binary\ncredential\xff-0123456789"))
    second = load_secret(state, credential(tmp_path, b"the-next-credential-0123456789"))
    assert second.retired == (first.key,)
    assert stat.S_IMODE((state / RETIRED_NAME).stat().st_mode) == 0o600


def test_rotate_with_a_credential_says_to_replace_the_credential(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="credential"):
        rotate_secret(tmp_path, credential(tmp_path, b"credential-secret-0123456789"))


def test_a_retired_keys_file_others_can_read_is_refused(tmp_path: Path) -> None:
    load_secret(tmp_path, {})
    (tmp_path / RETIRED_NAME).chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_secret(tmp_path, {})
