"""Which of a cycle's papers each keyword and followed author matches, worked out once.

A thousand readers share about fifty distinct keywords. Matching every
reader against every cached paper repeats the same substring tests a
thousand times over (93 ms per reader against a 180-day cache); here each
distinct phrase and author is tested once per cycle against each paper, and
a reader's papers are set lookups. What "matches" means stays in
``digest.matching.rules``: this only remembers its answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from digest.matching.rules import author_key, normalize, paper_text, same_author
from digest.models import Paper


class PaperIndex:
    """Phrase -> ids and author -> ids over a fixed set of papers, filled on first ask.

    The answers are a pure function of the papers; the memo only saves work,
    so one index may serve every reader and the Daily Papers page of a cycle.
    """

    def __init__(self, papers: Sequence[Paper], texts: Mapping[str, str] | None = None) -> None:
        self.papers = tuple(papers)
        self.position = {p.id: i for i, p in enumerate(self.papers)}
        # ``paper_text`` of each paper: title and abstract normalised once per cycle
        self.texts: Mapping[str, str] = (
            texts if texts is not None else {p.id: paper_text(p) for p in self.papers}
        )
        self._needles: dict[str, str] = {}
        self._phrases: dict[str, frozenset[str]] = {}
        self._authors: dict[tuple[str, ...], frozenset[str]] = {}
        self._author_keys: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] | None = None

    def phrase(self, phrase: str) -> frozenset[str]:
        """Ids of the papers whose title or abstract contains ``phrase`` (``_has``'s test)."""
        needle = self._needles.get(phrase)
        if needle is None:
            needle = self._needles[phrase] = normalize(phrase)
        ids = self._phrases.get(needle)
        if ids is None:
            texts = self.texts
            ids = (
                frozenset(p.id for p in self.papers if needle in texts[p.id])
                if needle.strip()
                else frozenset()
            )
            self._phrases[needle] = ids
        return ids

    def author(self, followed: str) -> frozenset[str]:
        """Ids of the papers ``followed`` is an author of (``by_author``'s test)."""
        want = author_key(followed)
        ids = self._authors.get(want)
        if ids is None:
            if self._author_keys is None:
                # each paper's author names normalised once, not once per followed name
                self._author_keys = tuple(
                    (p.id, tuple(author_key(a) for a in p.authors)) for p in self.papers
                )
            ids = frozenset(
                pid for pid, keys in self._author_keys if any(same_author(want, h) for h in keys)
            )
            self._authors[want] = ids
        return ids

    def paper(self, paper_id: str) -> Paper | None:
        at = self.position.get(paper_id)
        return None if at is None else self.papers[at]

    def in_order(self, ids: Iterable[str]) -> list[str]:
        """``ids`` in the order of ``papers``."""
        return sorted(ids, key=self.position.__getitem__)
