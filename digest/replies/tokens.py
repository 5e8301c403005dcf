"""Per-reader command tokens: who may unsubscribe, pause or steer whom.

A token is an HMAC-SHA256 of (reader address, action, argument) under a
secret only this installation knows, so a reply can act for a reader only if
it carries a link that was mailed to that reader. Nothing is stored per
token: the same inputs always give the same token, and a changed address,
action or paper id gives a different one.

The secret is a systemd credential (``$CREDENTIALS_DIRECTORY/reply-secret``)
when one is given, else a file ``reply-secret`` in the state folder, created
once with mode 0600. Losing or replacing it invalidates every link already
mailed (readers then get a confirmation mail instead), nothing worse.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from digest.config import credential_path
from digest.errors import ConfigError
from digest.models import address_key

SECRET_NAME = "reply-secret"  # file name in the state folder, and credential name
MIN_SECRET_BYTES = 16

# 128 bits: forging one needs ~2^127 guesses, each a mail we would ignore.
# Base32 (A-Z, 2-7) because clients and MTAs fold the case of subjects;
# 128 bits take 26 characters once the padding is dropped.
TOKEN_BYTES = 16
TOKEN_LENGTH = 26

# Bumping the version invalidates every link in every mail ever sent.
_DOMAIN = b"digest-reply-token-v1"


@dataclass(frozen=True, slots=True)
class ReplySecret:
    key: bytes = field(repr=False)  # never in logs or reprs

    def __post_init__(self) -> None:
        if len(self.key) < MIN_SECRET_BYTES:
            raise ValueError(f"a reply secret needs at least {MIN_SECRET_BYTES} bytes")


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
    """Tokens for one reader: the HMAC state after the reader's part, copied per command.

    A digest carries dozens of links for the same reader; copying the keyed
    state is cheaper than keying a new HMAC for each.
    """

    __slots__ = ("_mac",)

    def __init__(self, secret: ReplySecret, address: str) -> None:
        prefix = b"\0".join((_DOMAIN, normalise_address(address).encode("utf-8"), b""))
        self._mac = hmac.new(secret.key, prefix, hashlib.sha256)

    def token(self, action: str, argument: str = "") -> str:
        mac = self._mac.copy()
        mac.update(action.strip().lower().encode("utf-8"))
        mac.update(b"\0" + normalise_argument(argument).encode("utf-8"))
        return _base32(mac.digest()[:TOKEN_BYTES])


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # RFC 4648 §6
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)  # 10 bits -> 2 characters


def _base32(digest: bytes) -> str:
    """RFC 4648 base32 of 16 bytes, unpadded: ``base64.b32encode`` without its Python loop.

    128 bits padded with two zero bits are 13 groups of 10 bits; links for
    10,000 readers need over half a million of these.
    """
    n = int.from_bytes(digest, "big") << 2
    return "".join([_PAIRS[(n >> shift) & 1023] for shift in range(120, -1, -10)])


def command_token(secret: ReplySecret, address: str, action: str, argument: str = "") -> str:
    """The token that authorises ``action`` (with ``argument``) for ``address``.

    HMAC-SHA256 over ``domain NUL address NUL action NUL argument``, the first 128 bits.
    """
    return Signer(secret, address).token(action, argument)


def token_matches(
    secret: ReplySecret, address: str, action: str, argument: str, token: str
) -> bool:
    """Whether ``token`` authorises this command; constant time, case-insensitive."""
    expected = command_token(secret, address, action, argument)
    given = token.strip().upper().encode("ascii", errors="replace")
    return hmac.compare_digest(expected.encode("ascii"), given)


def load_secret(state_dir: Path, env: Mapping[str, str]) -> ReplySecret:
    """The systemd credential if given, else the state folder's file, created on first use."""
    credential = credential_path(env, SECRET_NAME)
    if credential is not None and credential.exists():
        return _read_secret(credential, check_mode=False)
    path = state_dir / SECRET_NAME
    if not path.exists():
        _create_secret(path)
    return _read_secret(path, check_mode=True)


def _read_secret(path: Path, *, check_mode: bool) -> ReplySecret:
    try:
        if check_mode:
            mode = path.stat().st_mode
            # Anyone who can read the secret can unsubscribe every reader.
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ConfigError(
                    str(path),
                    [f"readable by others (mode {stat.S_IMODE(mode):04o}); run chmod 600 on it"],
                )
        key = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the reply secret: {exc.strerror}"]) from exc
    if len(key) < MIN_SECRET_BYTES:
        raise ConfigError(str(path), [f"the reply secret is shorter than {MIN_SECRET_BYTES} bytes"])
    return ReplySecret(key)


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
            os.write(fd, secrets.token_hex(32).encode("ascii") + b"\n")
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
