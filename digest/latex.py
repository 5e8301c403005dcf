"""LaTeX in arXiv titles and abstracts made readable as plain Unicode (pylatexenc).

Readers should see ``O(n²)``-ish text, not ``$O(n^2)$``. pylatexenc does the
work; the wrapping below guards its known pitfalls (delivery-and-operations
§4): a bare ``%`` starts a comment and eats the rest of the line, an
unbalanced ``$`` turns the rest into math, ``\\frac`` loses its brackets.
The output is plain text and is escaped by the templates like any other
field.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache

from pylatexenc.latex2text import LatexNodes2Text, MacroTextSpec, get_default_latex_context_db

log = logging.getLogger(__name__)

_BARE_PERCENT = re.compile(r"(?<!\\)%")
_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")
_LATEXISH = re.compile(r"[\\$^_{}~]")
_WS = re.compile(r"\s+")
_SUPERSCRIPTS = str.maketrans("0123456789+-=()n", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿ")
_SUBSCRIPTS = str.maketrans("0123456789+-=()", "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎")


@lru_cache(maxsize=1)
def _converter() -> LatexNodes2Text:
    db = get_default_latex_context_db()
    db.add_context_category(
        "digest",
        prepend=True,
        macros=[
            MacroTextSpec("frac", simplify_repl="(%s)/(%s)"),
            MacroTextSpec("dfrac", simplify_repl="(%s)/(%s)"),
            MacroTextSpec("tfrac", simplify_repl="(%s)/(%s)"),
            # astral-plane script letters render poorly; the plain letter reads fine
            MacroTextSpec("mathcal", simplify_repl="%s"),
            MacroTextSpec("mathscr", simplify_repl="%s"),
        ],
    )
    return LatexNodes2Text(latex_context=db, math_mode="text", strict_latex_spaces=False)


def _scripts(text: str) -> str:
    """``n^2`` -> ``n²`` and ``x_1`` -> ``x₁`` where every character has a Unicode form."""

    def sup(m: re.Match[str]) -> str:
        body = m.group(1) or m.group(2)
        out = body.translate(_SUPERSCRIPTS)
        return out if all(c not in "0123456789+-=()n" for c in out) else m.group(0)

    def sub(m: re.Match[str]) -> str:
        body = m.group(1) or m.group(2)
        out = body.translate(_SUBSCRIPTS)
        return out if all(c not in "0123456789+-=()" for c in out) else m.group(0)

    text = re.sub(r"\^(?:\{([0-9+\-=()n]+)\}|([0-9n]))", sup, text)
    return re.sub(r"_(?:\{([0-9+\-=()]+)\}|([0-9]))", sub, text)


@lru_cache(maxsize=8192)
def to_text(source: str) -> str:
    """Readable Unicode for a title or abstract; the source unchanged if it cannot be converted.

    Text without any LaTeX-ish character is returned as is (fast path: most
    titles).
    """
    if not _LATEXISH.search(source):
        return source
    if len(_UNESCAPED_DOLLAR.findall(source)) % 2:
        # An unbalanced $ would swallow the rest of the abstract as math.
        return source
    escaped = _BARE_PERCENT.sub(r"\\%", source)
    try:
        out = _converter().latex_to_text(escaped)
    except Exception:  # pylatexenc raises assorted errors on odd input
        log.debug("LaTeX conversion failed; showing the source", exc_info=True)
        return source
    out = _WS.sub(" ", _scripts(out)).strip()
    return out or source
