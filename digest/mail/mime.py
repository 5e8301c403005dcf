"""A message's bytes, built once: headers by the ``email`` package, bodies by C codecs.

The ``email`` package's quoted-printable encoder is pure Python and took
half of ``build_message``'s time on a 40 KB HTML digest; ``binascii``'s
does the same in C. Headers still go through ``policy.default`` (it
refuses CR/LF in values and encodes non-ASCII words), folded exactly as its
generator would. Lines end in LF, as ``bytes(EmailMessage)`` wrote them:
the SMTP client turns them into CRLF and dot-stuffs on the wire.
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence
from email import policy
from email.message import EmailMessage

_POLICY = policy.default
# RFC 6532: an internationalised message carries its addresses as UTF-8; an
# address has no encoded-word form (RFC 2047 §5), so no other way exists
_UTF8_POLICY = policy.default.clone(utf8=True)
MAX_LINE = 76  # RFC 2045 §6.7 for quoted-printable and base64 lines


def _fix_line(line: bytes) -> bytes:
    """One encoded line made safe: no leading "From ", at most 76 characters.

    An mbox-storing MTA prefixes a ">" to a line starting "From ": it is
    spelt "=46rom ". ``b2a_qp`` itself sometimes ends a line with an escape
    at column 77. A long line gets a soft break where no ``=XX`` is cut.
    """
    if line.startswith(b"From "):
        line = b"=46" + line[1:]
    if len(line) <= MAX_LINE:
        return line
    cut = MAX_LINE - 1
    while b"=" in line[cut - 2 : cut]:
        cut -= 1
    return line[:cut] + b"=\n" + _fix_line(line[cut:])


def quoted_printable(text: str) -> bytes:
    """``text`` as UTF-8 quoted-printable, LF line ends, lines of at most 76 characters."""
    data = text.replace("\r\n", "\n").encode("utf-8")
    encoded = binascii.b2a_qp(data, quotetabs=False, istext=True, header=False)
    lines = encoded.split(b"\n")
    if encoded.startswith(b"From ") or b"\nFrom " in encoded or max(map(len, lines)) > MAX_LINE:
        encoded = b"\n".join(_fix_line(line) for line in lines)
    return encoded


def base64_lines(text: str) -> bytes:
    data = text.replace("\r\n", "\n").encode("utf-8")
    step = MAX_LINE // 4 * 3  # 57 bytes make one 76-character line
    return b"".join(binascii.b2a_base64(data[i : i + step]) for i in range(0, len(data), step))


def encode_text(text: str) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, body): quoted-printable, or base64 where that is smaller.

    Mostly-ASCII text (inlined HTML, English abstracts) grows a few percent
    in quoted-printable and a third in base64; text in other scripts is the
    other way round. Like ``EmailMessage.set_content``, the text is given a
    final line break.
    """
    if not text.endswith("\n"):
        text += "\n"
    qp = quoted_printable(text)
    if len(qp) <= len(text) * 4 // 3 + 4:
        return "quoted-printable", qp
    b64 = base64_lines(text)
    return ("base64", b64) if len(b64) < len(qp) else ("quoted-printable", qp)


def _headers(msg: EmailMessage, utf8: bool = False) -> bytes:
    # what BytesGenerator writes for each header under the message's policy
    pol = _UTF8_POLICY if utf8 else _POLICY
    return b"".join(pol.fold_binary(name, value) for name, value in msg.raw_items())


def alternative(
    headers: EmailMessage, parts: Sequence[tuple[str, str]], boundary: str, *, utf8: bool = False
) -> bytes:
    """A ``multipart/alternative`` message: ``headers`` plus (subtype, text) parts in order.

    ``boundary`` must start with "=_": neither quoted-printable nor base64
    can produce that sequence, so it never occurs in a body. ``utf8`` writes
    the headers as UTF-8 (RFC 6532), for a recipient whose local part is not
    ASCII: such a message can only be sent with SMTPUTF8.
    """
    if not boundary.startswith("=_"):
        raise ValueError("a boundary must start with '=_' so no encoded body can contain it")
    top = EmailMessage(policy=_POLICY)
    for name, value in headers.raw_items():
        top[name] = value
    top["MIME-Version"] = "1.0"
    top["Content-Type"] = f'multipart/alternative; boundary="{boundary}"'
    out = [_headers(top, utf8), b"\n"]
    for subtype, text in parts:
        cte, body = encode_text(text)
        out += [
            b"--" + boundary.encode() + b"\n",
            f'Content-Type: text/{subtype}; charset="utf-8"\n'.encode(),
            f"Content-Transfer-Encoding: {cte}\n\n".encode(),
            body if body.endswith(b"\n") else body + b"\n",
            b"\n",  # the line break before a delimiter belongs to the delimiter
        ]
    out.append(b"--" + boundary.encode() + b"--\n")
    return b"".join(out)
