"""digest.errors: one tree, an exit code per kind; a full disk is never a bug or a config error."""

from __future__ import annotations

import errno

import pytest

from digest.errors import (
    EXIT_CONFIG,
    EXIT_TEMPFAIL,
    ConfigError,
    MachineError,
    OutputError,
    StoreLockedError,
    translate,
)


def test_each_kind_carries_its_exit_code() -> None:
    assert ConfigError("subscribers.yaml", ["a problem"]).exit_code == EXIT_CONFIG
    assert StoreLockedError("in use").exit_code == EXIT_TEMPFAIL
    assert MachineError("disk full").exit_code == EXIT_TEMPFAIL


def test_a_bug_stays_a_bug() -> None:
    assert translate(KeyError("x")) is None


def test_a_digest_error_is_itself() -> None:
    exc = ConfigError("subscribers.yaml", ["a problem"])
    assert translate(exc) is exc


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EIO])
def test_a_failing_disk_is_a_temporary_failure_naming_the_path(code: int) -> None:
    err = OSError(code, "the disk said no", "/var/lib/digest/digest.json")
    got = translate(err)
    assert isinstance(got, MachineError) and got.exit_code == EXIT_TEMPFAIL
    assert "/var/lib/digest/digest.json" in str(got)


def test_a_full_disk_behind_an_output_error_is_still_temporary() -> None:
    # a module translated it as "cannot write the -o path" (73); the cause decides
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise OutputError("cannot write preview.html") from inner
    except OutputError as outer:
        got = translate(outer)
    assert isinstance(got, MachineError) and got.exit_code == EXIT_TEMPFAIL
    assert "preview.html" in str(got)


def test_a_closed_output_says_so_in_words() -> None:
    got = translate(BrokenPipeError(errno.EPIPE, "Broken pipe"))
    assert isinstance(got, MachineError)
    assert "output was closed" in str(got)
