"""LaTeX in arXiv titles, abstracts, comments and author names made readable as plain Unicode.

Readers should see ``O(n²)``, not ``$O(n^2)$``, and never a reading that
changes the meaning: ``n^{r-1}`` becomes ``n^(r-1)`` (not ``n^r-1``),
``\\frac{a+b}{c}`` becomes ``(a+b)/c`` and ``{1\\over 2}`` becomes ``1/2``.
pylatexenc parses; the subclass below renders scripts, fractions and roots
with the parentheses their grouping needs, and the wrapping guards the known
pitfalls of arXiv abstracts: a bare ``%`` starts a comment and eats
the rest of the line, a bare ``&`` is an alignment tab and vanishes, an
unbalanced ``$`` turns the rest into math, URLs carry ``~`` and ``_``, and
mathematical alphanumerics (``𝒪``, ``𝐱``) sit in the astral plane, which
fonts cover poorly and spam filters read as obfuscation.
The output is plain text and is escaped by the templates like any other field.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from pylatexenc import latexwalker
from pylatexenc.latex2text import LatexNodes2Text, MacroTextSpec, get_default_latex_context_db
from pylatexenc.macrospec import MacroSpec

log = logging.getLogger(__name__)

_BARE_PERCENT = re.compile(r"(?<!\\)%")
_BARE_AMPERSAND = re.compile(r"(?<!\\)&")
_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")
# A macro name runs into a non-ASCII letter in some feeds (``\mathbfθ``);
# pylatexenc would read one unknown macro and drop the letter.
_MACRO_THEN_UNICODE = re.compile(r"(\\[A-Za-z]+)(?=[^\x00-\x7f])")
_LATEXISH = re.compile(r"[\\$^_{}~]")
# not inside \url{...} / \href{...}{...}: pylatexenc handles those as a whole
_LIGATURES = (("---", "—"), ("--", "–"), ("``", "“"), ("''", "”"))
_URL = re.compile(r"((?<!\{)https?://[^\s{}]+)")
_WS = re.compile(r"\s+")
# Characters every common font has as a superscript / subscript; anything
# else keeps the ``^`` / ``_`` and gets parentheses when it is longer than one.
_SUPERSCRIPTS = str.maketrans("0123456789+-−=()ni", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁻⁼⁽⁾ⁿⁱ")
_SUBSCRIPTS = str.maketrans("0123456789+-−=()", "₀₁₂₃₄₅₆₇₈₉₊₋₋₌₍₎")
_SCRIPT_SYMBOLS = {"∘": "°", "'": "′", "′": "′", "†": "†", "‡": "‡"}
# A single-character script inside math: ``x^2``, ``x_i``, ``\|x\|_2``.
_INLINE_SCRIPT = re.compile(r"([\^_])\s*([^\s\^_{}])")
_PARENTHESIZED = re.compile(r"\([^()]*\)|\[[^\[\]]*\]|\{[^{}]*\}")
_OPERATOR = re.compile(r"[\s+\-−*/·×÷=<>≤≥≠±∓,;:|]")
# Operator names that must not run into the letter before them (``n\log n``).
_OPERATOR_NAMES = frozenset(
    """log ln lg exp sin cos tan sinh cosh tanh arcsin arccos arctan sec csc cot
    max min sup inf lim liminf limsup arg argmax argmin det dim deg gcd ker Pr""".split()  # noqa: SIM905
)
_MATH_ALPHANUMERICS = range(0x1D400, 0x1D800)


def _is_atom(s: str) -> bool:
    """Whether ``s`` reads as one operand next to ``/`` or ``^`` without parentheses."""
    if not s:
        return True
    previous = None
    while previous != s:  # drop bracketed parts, innermost first: f(x+y) is one operand
        previous, s = s, _PARENTHESIZED.sub("", s)
    return not _OPERATOR.search(s)


def _fraction(numerator: str, denominator: str) -> str:
    num, den = numerator.strip(), denominator.strip()
    num = num if _is_atom(num) else f"({num})"
    den = den if _is_atom(den) else f"({den})"
    return f"{num}/{den}"


def _script(op: str, body: str) -> str:
    """``^``/``_`` with its argument: Unicode scripts if every character has one, else grouped."""
    body = _WS.sub("", body)
    if not body:
        return ""
    if op == "^" and body in _SCRIPT_SYMBOLS:
        return _SCRIPT_SYMBOLS[body]
    table = _SUPERSCRIPTS if op == "^" else _SUBSCRIPTS
    if all(ord(c) in table for c in body):
        return body.translate(table)
    if len(body) == 1 or (op == "_" and body.isalnum()):
        return op + body  # x_ij: a subscript word ends where the word ends
    if body.startswith("(") and body.endswith(")") and _is_atom(body):
        return op + body
    return f"{op}({body})"


class _Converter(LatexNodes2Text):  # type: ignore[misc]  # pylatexenc ships no types
    """pylatexenc's renderer, keeping grouping where plain concatenation would lose it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._math_depth = 0

    def math_node_to_text(self, node: Any) -> str:
        # $...$, \[...\] and (through pylatexenc's callback) equation environments
        self._math_depth += 1
        try:
            return str(super().math_node_to_text(node))
        finally:
            self._math_depth -= 1

    def nodelist_to_text(self, nodelist: Any) -> str:
        nodes = list(nodelist)
        for i, node in enumerate(nodes):
            # TeX's primitive {a \over b}: everything before over everything after.
            if _is_macro(node, "over"):
                return _fraction(
                    self.nodelist_to_text(nodes[:i]), self.nodelist_to_text(nodes[i + 1 :])
                )
        out = ""
        previous = None
        for node in nodes:
            if previous is not None and _is_bare_macro(previous) and _is_chars(node):
                out += previous.macro_post_space
            if node.isNodeType(latexwalker.LatexCharsNode):
                piece = str(node.chars)
                if self._math_depth:
                    piece = _INLINE_SCRIPT.sub(lambda m: _script(m.group(1), m.group(2)), piece)
                out += self.do_fill_text(piece) if self.fill_text else piece
            elif _ends_in_script(previous):
                # the argument of a script is this group or macro: keep it together
                op, out = out[-1], out[:-1]
                out += _script(op, self.node_to_text(node))
            else:
                text = str(self.node_to_text(node))
                if _is_macro_in(node, _OPERATOR_NAMES) and out[-1:].isalnum():
                    out += " "
                out += text
            previous = node
        return out


def _ends_in_script(node: Any) -> bool:
    """Whether ``node`` is text ending in ``^`` or ``_``: the next node is its argument."""
    return node is not None and _is_chars(node) and str(node.chars).endswith(("^", "_"))


def _is_chars(node: Any) -> bool:
    return bool(node.isNodeType(latexwalker.LatexCharsNode))


def _is_macro(node: Any, name: str) -> bool:
    return bool(node.isNodeType(latexwalker.LatexMacroNode) and node.macroname == name)


def _is_macro_in(node: Any, names: frozenset[str]) -> bool:
    return bool(node.isNodeType(latexwalker.LatexMacroNode) and node.macroname in names)


def _is_bare_macro(node: Any) -> bool:
    return bool(
        node.isNodeType(latexwalker.LatexMacroNode)
        and node.nodeoptarg is None
        and len(node.nodeargs) == 0
    )


def _arg(node: Any, l2tobj: LatexNodes2Text, k: int) -> str:
    return str(l2tobj.node_arg_to_text(node, k))


def _frac(node: Any, l2tobj: LatexNodes2Text) -> str:
    return _fraction(_arg(node, l2tobj, 0), _arg(node, l2tobj, 1))


def _binom(node: Any, l2tobj: LatexNodes2Text) -> str:
    return f"C({_arg(node, l2tobj, 0).strip()}, {_arg(node, l2tobj, 1).strip()})"


def _sqrt(node: Any, l2tobj: LatexNodes2Text) -> str:
    index = _arg(node, l2tobj, 0).strip()  # \sqrt[3]{x}
    body = _arg(node, l2tobj, 1).strip()
    sign = {"": "√", "2": "√", "3": "∛", "4": "∜"}.get(index)
    if sign is None:
        return f"{body if _is_atom(body) else f'({body})'}^(1/{index})"
    return sign + (body if _is_atom(body) else f"({body})")


def _first(node: Any, l2tobj: LatexNodes2Text) -> str:
    return _arg(node, l2tobj, 0)  # "" when the argument is missing, where "%s" logs a warning


def _second(node: Any, l2tobj: LatexNodes2Text) -> str:
    return _arg(node, l2tobj, 1)  # \href{url}{text}: the text


def _macros() -> list[MacroTextSpec]:
    plain = ["mathcal", "mathscr", "mathbf", "mathit", "mathsf", "mathtt", "mathfrak"]
    plain += ["boldsymbol", "bm", "mathrm", "operatorname", "url"]
    fns: dict[str, Callable[[Any, LatexNodes2Text], str]] = {
        "frac": _frac,
        "dfrac": _frac,
        "tfrac": _frac,
        "binom": _binom,
        "sqrt": _sqrt,
        "href": _second,
    }
    symbols = {"|": "‖", "Vert": "‖", "lVert": "‖", "rVert": "‖", "colon": ":", "prime": "′"}
    # a citation key means nothing to a reader, but that one is cited does
    symbols |= {"cite": "[cit.]", "citep": "[cit.]", "citet": "[cit.]", "ref": "[ref.]"}
    return (
        [MacroTextSpec(name, simplify_repl=_first) for name in plain]
        + [MacroTextSpec(name, simplify_repl=fn) for name, fn in fns.items()]
        + [MacroTextSpec(name, simplify_repl=text) for name, text in symbols.items()]
    )


@lru_cache(maxsize=1)
def _converter() -> _Converter:
    db = get_default_latex_context_db()
    db.add_context_category("digest", prepend=True, macros=_macros())
    return _Converter(latex_context=db, math_mode="text", strict_latex_spaces=False)


@lru_cache(maxsize=1)
def _parsing() -> Any:
    """The parser's view of macros it does not know to take arguments (its default has none)."""
    db = latexwalker.get_default_latex_context_db()
    args = {"binom": "{{", "dfrac": "{{", "tfrac": "{{", "href": "{{"}
    args |= {"boldsymbol": "{", "bm": "{", "operatorname": "{"}
    db.add_context_category(
        "digest", prepend=True, macros=[MacroSpec(m, spec) for m, spec in args.items()]
    )
    return db


def _plain_letters(out: str, source: str) -> str | None:
    """Astral characters the conversion introduced, as their plain letter; None if impossible."""
    if all(ord(c) < 0x10000 for c in out):
        return out
    chars = []
    for c in out:
        if ord(c) >= 0x10000 and c not in source:
            c = unicodedata.normalize("NFKC", c) if ord(c) in _MATH_ALPHANUMERICS else ""
            if not c:
                return None
        chars.append(c)
    return "".join(chars)


def _convert(source: str) -> str:
    escaped = _BARE_AMPERSAND.sub(r"\\&", _BARE_PERCENT.sub(r"\\%", source))
    escaped = _MACRO_THEN_UNICODE.sub(r"\1 ", escaped)
    nodes = latexwalker.LatexWalker(escaped, latex_context=_parsing()).get_latex_nodes()[0]
    return _converter().nodelist_to_text(nodes)


@lru_cache(maxsize=8192)
def text(source: str) -> str:
    """Readable Unicode for a title, abstract or comment; the source unchanged if it cannot be.

    Text without any LaTeX-ish character is returned as is (fast path: most
    titles). URLs are kept verbatim.
    """
    if not _LATEXISH.search(source):
        # what pylatexenc would change here: dashes and quotes, as in abstracts
        for tex, char in _LIGATURES:
            source = source.replace(tex, char)
        return source
    if len(_UNESCAPED_DOLLAR.findall(source)) % 2:
        # An unbalanced $ would swallow the rest of the abstract as math.
        return source
    try:
        parts = _URL.split(source)
        out = "".join(part if i % 2 else _convert(part) for i, part in enumerate(parts))
    except Exception:  # pylatexenc raises assorted errors on odd input
        log.debug("LaTeX conversion failed; showing the source", exc_info=True)
        return source
    plain = _plain_letters(unicodedata.normalize("NFC", out), source)
    if plain is None or plain.count("$") > source.count("$"):
        return source
    return _WS.sub(" ", plain).strip() or source


def name(source: str) -> str:
    """An author's name with TeX accents resolved (``G\\"unl\\"uk`` -> ``Günlük``).

    The same conversion as ``text``: names carry accents, ``~`` and the odd
    ``{\\'e}``, never math, and one rule set keeps both in step.
    """
    return text(source)


# The name compose.py has imported so far; ``text`` is the one to use.
to_text = text
