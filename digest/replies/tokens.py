"""Per-reader command tokens: who may unsubscribe, pause or steer whom.

A token is an HMAC-SHA256 of (issue day, reader address, action, argument)
under a secret only this installation knows, so a reply can act for a reader
only if it carries a link that was mailed to that reader. Nothing is stored
per token: the same inputs always give the same token, and a changed day,
address, action or paper id gives a different one. The day is written after
the MAC, three base32 letters, so that a token says how old it is; tokens
mailed before that carry no day (``digest-reply-token-v1``) and still verify,
as undated.

The secret is a systemd credential (``$CREDENTIALS_DIRECTORY/reply-secret``)
when one is given, else a file ``reply-secret`` in the state folder, created
once with mode 0600: its first line is the current key, the lines below it
the keys it replaced (``rotate_secret``). New links are signed with the
current key only; a link signed with a retired key still verifies, as
retired, and still unsubscribes. So that replacing the secret by hand,
deleting the file or moving to a credential (or replacing that) does not
orphan the links already mailed, every key digest signs with is also noted
in ``reply-secret.retired`` beside the database, and every key noted there
but the current one is retired.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from digest.atomic import write_atomic
from digest.config import credential_path
from digest.errors import ConfigError, UsageError
from digest.models import address_key

log = logging.getLogger(__name__)

SECRET_NAME = "reply-secret"  # file name in the state folder, and credential name
RETIRED_NAME = "reply-secret.retired"  # every key signed with, hex, one a line
MIN_SECRET_BYTES = 16

# 128 bits: forging one needs ~2^127 guesses, each a mail we would ignore.
# Base32 (A-Z, 2-7) because clients and MTAs fold the case of subjects;
# 128 bits take 26 characters once the padding is dropped.
TOKEN_BYTES = 16
MAC_LENGTH = 26
# The issue day: days since EPOCH in three base32 letters (15 bits), enough
# until 2109 and short enough for a List-Unsubscribe header.
EPOCH = date(2020, 1, 1)
DAY_LENGTH = 3
TOKEN_LENGTH = MAC_LENGTH + DAY_LENGTH

# After this, a dated token still unsubscribes but no longer acts otherwise: the
# reader is asked to confirm. A digest is a permanent key for whoever it was
# forwarded to; three months is longer than anyone leaves a digest unread.
TOKEN_LIFETIME = timedelta(days=90)

# Bumping a version invalidates every link made with it.
_DOMAIN = b"digest-reply-token-v2"  # dated
_UNDATED_DOMAIN = b"digest-reply-token-v1"  # the tokens mailed before they carried their day


@dataclass(frozen=True, slots=True)
class ReplySecret:
    """The key new links are signed with, and the keys older links were signed with."""

    key: bytes = field(repr=False)  # never in logs or reprs
    retired: tuple[bytes, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if any(len(k) < MIN_SECRET_BYTES for k in (self.key, *self.retired)):
            raise ValueError(f"a reply secret needs at least {MIN_SECRET_BYTES} bytes")


@dataclass(frozen=True, slots=True)
class Proof:
    """What a token that verified says beyond whom and what it is for."""

    issued: date | None  # None: an undated token, mailed before tokens carried their day
    retired: bool = False  # signed with a key that is no longer the current one


def normalise_address(address: str) -> str:
    """The reader identity a token binds: the address's one identity (``address_key``).

    Trimmed, without angle brackets, the local part lower-cased (mail clients
    and MTAs change case, and a token must survive that), the domain in one
    IDNA form, so a reply from ``User@XN--BCHER-KVA.example`` acts for
    ``user@bücher.example``. Tokens already mailed stay valid: for every
    address of ASCII letters, and every one configured so far, the key is
    the lower-cased address they were minted over.
    """
    return address_key(address)


def normalise_argument(argument: str) -> str:
    """arXiv ids are lower-case (``2202.12139``, ``astro-ph/9904306``), so folding is safe."""
    return argument.strip().lower()


class Signer:
    """Tokens for one reader and day: the HMAC state after those, copied per command.

    A digest carries dozens of links for the same reader; copying the keyed
    state is cheaper than keying a new HMAC for each.
    """

    __slots__ = ("_day", "_mac")

    def __init__(self, secret: ReplySecret, address: str, issued: date) -> None:
        self._day = _day_text(issued)
        self._mac = _keyed(secret.key, address, self._day)

    def token(self, action: str, argument: str = "") -> str:
        return _mac_text(self._mac, action, argument) + self._day


def _keyed(key: bytes, address: str, day: str | None) -> hmac.HMAC:
    """The HMAC keyed and fed the parts before the command: domain, day, address."""
    head = (_DOMAIN, day.encode("ascii")) if day is not None else (_UNDATED_DOMAIN,)
    prefix = b"\0".join((*head, normalise_address(address).encode("utf-8"), b""))
    return hmac.new(key, prefix, hashlib.sha256)


def _mac_text(keyed: hmac.HMAC, action: str, argument: str) -> str:
    mac = keyed.copy()
    mac.update(action.strip().lower().encode("utf-8"))
    mac.update(b"\0" + normalise_argument(argument).encode("utf-8"))
    return _base32(mac.digest()[:TOKEN_BYTES])


def _day_text(issued: date) -> str:
    n = (issued - EPOCH).days
    if not 0 <= n < 32**DAY_LENGTH:
        raise ValueError(f"{issued} cannot be written in a token")
    return "".join(_ALPHABET[(n >> shift) & 31] for shift in (10, 5, 0))


def _day_of(text: str) -> date | None:
    n = 0
    for c in text:
        i = _ALPHABET.find(c)
        if i < 0:
            return None
        n = n * 32 + i
    return EPOCH + timedelta(days=n)


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # RFC 4648 §6
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)  # 10 bits -> 2 characters


def _base32(digest: bytes) -> str:
    """RFC 4648 base32 of 16 bytes, unpadded: ``base64.b32encode`` without its Python loop.

    128 bits padded with two zero bits are 13 groups of 10 bits; links for
    10,000 readers need over half a million of these.
    """
    n = int.from_bytes(digest, "big") << 2
    return "".join([_PAIRS[(n >> shift) & 1023] for shift in range(120, -1, -10)])


def command_token(
    secret: ReplySecret, address: str, action: str, argument: str = "", *, issued: date
) -> str:
    """The token that authorises ``action`` (with ``argument``) for ``address``, from ``issued``.

    HMAC-SHA256 over ``domain NUL day NUL address NUL action NUL argument``,
    the first 128 bits, then the day.
    """
    return Signer(secret, address, issued).token(action, argument)


def verify(
    secret: ReplySecret, address: str, action: str, argument: str, token: str
) -> Proof | None:
    """What ``token`` proves for this command; None when it does not authorise it.

    Constant time per key, case-insensitive; never raises, whatever the text.
    """
    given = token.strip().upper()
    if len(given) == TOKEN_LENGTH:
        day: str | None = given[MAC_LENGTH:]
        issued = _day_of(given[MAC_LENGTH:])
        if issued is None:
            return None
    elif len(given) == MAC_LENGTH:
        day, issued = None, None
    else:
        return None
    mac = given[:MAC_LENGTH].encode("ascii", errors="replace")
    for key in (secret.key, *secret.retired):
        expected = _mac_text(_keyed(key, address, day), action, argument)
        if hmac.compare_digest(expected.encode("ascii"), mac):
            return Proof(issued, retired=key != secret.key)
    return None


def token_matches(
    secret: ReplySecret, address: str, action: str, argument: str, token: str
) -> bool:
    """Whether ``token`` authorises this command at all, whatever its day."""
    return verify(secret, address, action, argument, token) is not None


def load_secret(state_dir: Path, env: Mapping[str, str]) -> ReplySecret:
    """The systemd credential if given, else the state folder's file, created on first use.

    The current key is the credential, or the file's first line; retired
    are the file's other lines and every other key noted in
    ``reply-secret.retired``. The current key is noted there first, if it
    is not yet: a key is noted before any link is signed with it.
    """
    credential = credential_path(env, SECRET_NAME)
    path = state_dir / SECRET_NAME
    if credential is not None and credential.exists():
        # a credential is one key, whatever bytes it holds
        current, older = _read_key(credential), _read_keys(path) if path.exists() else ()
    else:
        if not path.exists():
            _create_secret(path)
        current, *older = _read_keys(path)
    noted = _read_noted(state_dir / RETIRED_NAME)
    if current not in noted:
        _note(state_dir / RETIRED_NAME, current)
    retired = dict.fromkeys(k for k in (*older, *noted) if k != current)
    return ReplySecret(current, tuple(retired))


def rotate_secret(state_dir: Path, env: Mapping[str, str]) -> int:
    """A new current key in the state folder's file, the old ones kept below it; how many.

    Raises ``UsageError`` when the secret is a systemd credential: digest
    cannot write that; the operator replaces it, and its key is noted already.
    """
    credential = credential_path(env, SECRET_NAME)
    if credential is not None and credential.exists():
        raise UsageError(
            f"the reply secret is the systemd credential {credential}: replace that file "
            f"instead; the key it holds now is kept in {state_dir / RETIRED_NAME}, so links "
            "already mailed still unsubscribe"
        )
    path = state_dir / SECRET_NAME
    load_secret(state_dir, env)  # creates the file if need be, and notes its key
    keys = _read_keys(path)
    try:
        write_atomic(path, b"\n".join((_new_key(), *keys)) + b"\n", mode=0o600)
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot write the reply secret: {exc.strerror}"]) from exc
    return len(keys)


def _new_key() -> bytes:
    return secrets.token_hex(32).encode("ascii")


def _read_key(path: Path) -> bytes:
    key = _read(path, check_mode=False).strip()
    if len(key) < MIN_SECRET_BYTES:
        raise ConfigError(str(path), [f"the reply secret is shorter than {MIN_SECRET_BYTES} bytes"])
    return key


def _read_keys(path: Path) -> list[bytes]:
    """The keys of the state folder's file, one a line, the current one first."""
    keys = [line.strip() for line in _read(path, check_mode=True).splitlines() if line.strip()]
    if not keys or any(len(k) < MIN_SECRET_BYTES for k in keys):
        raise ConfigError(str(path), [f"the reply secret is shorter than {MIN_SECRET_BYTES} bytes"])
    return keys


def _read_noted(path: Path) -> tuple[bytes, ...]:
    """The keys noted in ``reply-secret.retired`` (hex: a credential may hold any bytes)."""
    if not path.exists():
        return ()
    try:
        lines = _read(path, check_mode=True).split()
        keys = tuple(bytes.fromhex(line.decode("ascii")) for line in lines)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(str(path), [f"a line is not a hex key ({exc})"]) from exc
    if any(len(k) < MIN_SECRET_BYTES for k in keys):
        raise ConfigError(str(path), [f"a key is shorter than {MIN_SECRET_BYTES} bytes"])
    return keys


def _note(path: Path, key: bytes) -> None:
    """Append ``key`` to ``reply-secret.retired`` (0600, fsynced): it outlives the current file.

    Failing to (a folder this user cannot write, as for a ``preview`` by
    another user; a full disk) is logged and no more: the key is still in
    its file, and only deleting or replacing that by hand would lose it.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, key.hex().encode("ascii") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        log.warning("cannot note the reply key in %s: %s", path, exc.strerror)


def _read(path: Path, *, check_mode: bool) -> bytes:
    try:
        if check_mode:
            mode = path.stat().st_mode
            # Anyone who can read a key can unsubscribe every reader.
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ConfigError(
                    str(path),
                    [f"readable by others (mode {stat.S_IMODE(mode):04o}); run chmod 600 on it"],
                )
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the reply secret: {exc.strerror}"]) from exc


def _create_secret(path: Path) -> None:
    """Write a fresh secret with mode 0600, atomically: a reader sees all of it or none.

    The file is written under a temporary name (created 0600, never widened)
    and hard-linked into place; ``link`` fails if another process won the
    race, and then that process's secret is the one everybody uses.
    """
    folder = path.parent
    tmp = folder / f".{SECRET_NAME}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, _new_key() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        # FileExistsError: someone else created it first, and theirs wins.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot create the reply secret: {exc.strerror}"]) from exc
    finally:
        tmp.unlink(missing_ok=True)
