"""What "matches" means (docs/delivery.md, "Matching"): pure functions, no I/O.

A keyword is a phrase. It matches when its words appear in order and
adjacent in the title or the abstract, after both sides are normalised the
same way: case folded, accents stripped, LaTeX markup removed, hyphens and
punctuation as word breaks, simple plurals folded. arXiv's own search is only
a candidate list; the old Daily Papers pages trusted it and listed the same
unrelated papers under every keyword.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache

from digest.models import Match, Paper, Subscriber

# LaTeX accent commands keep their letter: Schr\"odinger -> Schrodinger.
_ACCENT_CMD = re.compile(r"""\\(?:["'`^~=.]|[Hcvukbdr](?![A-Za-z]))\s*\{?\s*([A-Za-z])\}?""")
# Formatting commands vanish but keep their argument: \emph{x} -> x.
_FORMAT_CMDS = [
    "emph",
    "textbf",
    "textit",
    "texttt",
    "textsc",
    "textrm",
    "textsf",
    "text",
    "mathrm",
    "mathbf",
    "mathit",
    "mathsf",
    "mathtt",
    "mathcal",
    "mathbb",
    "mathfrak",
    "mathscr",
    "boldsymbol",
    "bm",
    "operatorname",
    "underline",
    "overline",
    "hat",
    "tilde",
    "bar",
    "vec",
    "dot",
    "widetilde",
    "widehat",
    "mbox",
    "hbox",
    "left",
    "right",
    "big",
    "Big",
    "bigg",
    "Bigg",
    "cite",
    "ref",
    "label",
    "url",
    "href",
    "footnote",
]
_FORMAT_CMD = re.compile(r"\\(?:{})(?![A-Za-z])".format("|".join(_FORMAT_CMDS)))
# Other commands keep their name as a word: $\lambda$-calculus -> lambda calculus.
_OTHER_CMD = re.compile(r"\\([A-Za-z]+)")
_NON_WORD = re.compile(r"[\W_]+")  # any script: Greek, Cyrillic, CJK words stay words


def _fold_plural(word: str) -> str:
    """Fold simple English plurals, identically on both sides of a match.

    In the spirit of Porter's step 1: drop a plural ``s``, then a final
    ``e``, and spell a final ``y`` as ``i``, so "cache"/"caches",
    "match"/"matches", "policy"/"policies" and "day"/"days" fold alike.
    The folded word is never shown; it only has to agree with itself.
    """
    if len(word) < 3 or not word.isalpha():
        return word
    w = word
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "i"
    elif w.endswith("s") and len(w) > 3 and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if w.endswith("e") and len(w) > 3:
        w = w[:-1]
    elif w.endswith("y") and len(w) > 2:
        w = w[:-1] + "i"
    return w


def _normalized_words(text: str) -> tuple[str, ...]:
    s = _ACCENT_CMD.sub(r"\1", text)
    s = _FORMAT_CMD.sub(" ", s)
    s = _OTHER_CMD.sub(r" \1 ", s)
    # fold case before and after decomposing: "ᾀ".upper() is two letters
    s = unicodedata.normalize("NFKD", s.casefold())
    s = "".join(ch for ch in s if not unicodedata.combining(ch)).casefold()
    # ß casefolds to "ss"; ł, ø, đ have no decomposition: spell them out.
    s = s.translate(_LETTERS)
    return tuple(_fold_plural(w) for w in _NON_WORD.split(s) if w)


# The word sequence that matching compares (cached: keywords repeat).
normalize_words = lru_cache(maxsize=4096)(_normalized_words)
# One displayed word at a time, for highlighting: a day's vocabulary, not its texts.
_word_forms = lru_cache(maxsize=65536)(_normalized_words)


_LETTERS = str.maketrans({"ł": "l", "ø": "o", "đ": "d", "æ": "ae", "œ": "oe", "ı": "i"})


def phrase_key(phrase: str) -> str:
    """One spelling for phrases that match alike ("Compiler", "compilers" -> "compil")."""
    return " ".join(normalize_words(phrase))


def unique_phrases(phrases: Iterable[str]) -> tuple[str, ...]:
    """``phrases`` in first-seen order, those that match alike only once."""
    seen: dict[str, str] = {}
    for phrase in phrases:
        seen.setdefault(phrase_key(phrase), phrase)
    return tuple(seen.values())


def normalize(text: str) -> str:
    """Normalised text as one space-separated string, padded for phrase search."""
    return " " + " ".join(normalize_words(text)) + " "


def contains_phrase(haystack: str, phrase: str) -> bool:
    """True when ``phrase``'s words occur adjacent and in order in ``haystack``.

    Both are raw texts; a phrase with no words matches nothing.
    """
    return _has(normalize(haystack), phrase)


def paper_text(paper: Paper) -> str:
    # Title and abstract are matched separately so a phrase never spans the
    # end of the title and the start of the abstract; the separator is a
    # word break that no phrase can contain.
    return normalize(paper.title) + "\x00" + normalize(paper.abstract)


def _has(text: str, phrase: str) -> bool:
    needle = normalize(phrase)
    return needle.strip() != "" and needle in text


def in_categories(paper: Paper, wanted: Sequence[str]) -> bool:
    """``wanted`` empty means any; ``cs`` means every ``cs.*``; ``cs.LG`` means itself."""
    if not wanted:
        return True
    for have in paper.categories:
        for want in wanted:
            if have == want or ("." not in want and have.startswith(want + ".")):
                return True
    return False


def author_key(name: str) -> tuple[str, ...]:
    """A name's normalised words, initials split off ("Y.LeCun" -> ("y", "lecun"))."""
    return normalize_words(name.replace(".", ". "))


def same_author(want: tuple[str, ...], have: tuple[str, ...]) -> bool:
    """``author_key``s of a followed name and a paper's author: the same person?"""
    if not want or not have or have[-1] != want[-1]:
        return False
    return all(
        a[0] == b[0] and (len(a) == 1 or len(b) == 1 or a == b)
        for a, b in zip(want[:-1], have[:-1], strict=False)
    )


def by_author(paper: Paper, followed: str) -> bool:
    """Is ``followed`` among the paper's authors?

    Same surname, and the given names agree as far as both are spelt out:
    "Yann LeCun", "Y. LeCun" and "LeCun" all follow "Yann LeCun".
    """
    want = author_key(followed)
    return any(same_author(want, author_key(author)) for author in paper.authors)


def match_paper(
    paper: Paper,
    subscriber: Subscriber,
    global_categories: Sequence[str] = (),
    text: str | None = None,
) -> Match | None:
    """Why ``subscriber`` wants ``paper``, or None.

    Keywords must appear (title or abstract) and the paper must sit in the
    subscriber's categories; followed authors bring their papers whatever
    the words or categories. ``exclude`` vetoes either way, as does the
    global category restriction. ``text`` is ``paper_text(paper)`` when the
    caller has it already (a cycle normalises each paper once).
    """
    if not in_categories(paper, global_categories):
        return None
    text = paper_text(paper) if text is None else text
    if any(_has(text, phrase) for phrase in subscriber.exclude):
        return None
    keywords: tuple[str, ...] = ()
    if in_categories(paper, subscriber.categories):
        keywords = tuple(k for k in subscriber.keywords if _has(text, k))
    authors = tuple(a for a in subscriber.authors if by_author(paper, a))
    if not keywords and not authors:
        return None
    return Match(paper=paper, keywords=keywords, authors=authors)


def match_all(
    papers: Iterable[Paper], subscriber: Subscriber, global_categories: Sequence[str] = ()
) -> tuple[Match, ...]:
    """Every paper ``subscriber`` wants, in the order given."""
    out = []
    for paper in papers:
        m = match_paper(paper, subscriber, global_categories)
        if m is not None:
            out.append(m)
    return tuple(out)


def mentions(paper: Paper, phrases: Iterable[str], text: str | None = None) -> bool:
    """Does any of ``phrases`` occur in the paper's title or abstract, as matching decides?

    ``text`` is ``paper_text(paper)`` when the caller has it already.
    """
    text = paper_text(paper) if text is None else text
    return any(_has(text, phrase) for phrase in phrases)


def keyword_matches(paper: Paper, keyword: str) -> bool:
    """Does ``keyword`` occur in the paper's title or abstract (the archive's test)?"""
    return _has(paper_text(paper), keyword)


# A displayed word: letters and digits, with any combining accents they carry
# (matching drops the accents, so "e" + U+0301 is one word there too).
_DISPLAYED_WORD = re.compile(r"[^\W_](?:[^\W_]|[\u0300-\u036f])*")


def highlight_spans(text: str, phrase: str) -> tuple[tuple[int, int], ...]:
    """Where ``phrase`` matches in *displayed* text: (start, end) of each occurrence.

    Each word of ``text`` is normalised as matching normalises it (case,
    accents, plural forms), and the phrase's words are looked for in order
    and adjacent, so every form that matching accepts is found: "galaxies"
    for "galaxy", "policy" for "policies", "Reinforcement-Learning" for
    "reinforcement learning". An occurrence runs from its first word's start
    to its last word's end. For highlighting only: it decides nothing about
    delivery.
    """
    needle = normalize_words(phrase)
    if not needle:
        return ()
    words = [
        (form, m.start(), m.end())
        for m in _DISPLAYED_WORD.finditer(text)
        for form in _word_forms(m.group())
    ]
    n, spans, i = len(needle), [], 0
    while i + n <= len(words):
        if all(words[i + j][0] == needle[j] for j in range(n)):
            spans.append((words[i][1], words[i + n - 1][2]))
            i += n
        else:
            i += 1
    return tuple(spans)
