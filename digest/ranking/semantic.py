"""Closeness in meaning, from a static embedding model: the optional extra ``digest[semantic]``.

tf-idf (``ranking.corpus``) knows that two abstracts share words, not that
"orchestrating LLM agents" and "delegation among autonomous assistants" are
one topic, nor that a multi-agent pipeline for video editing is about video
editing. With ``settings.semantic: true`` the ranker adds how close a paper
is in meaning to what the reader likes, read by wordllama's
``l2_supercat_256`` model: a static embedding (one vector per token, mean
pooled), so a paper costs a table lookup per token, not a transformer pass.
Its weights (16 MB) ship inside the wordllama wheel and are loaded from the
package's own folder with downloads disabled: digest never fetches a model.
Provenance is in the README ("Ranking by meaning").

The one module that imports wordllama and numpy. Each is imported when the
model is first loaded, so the default install (without the extra) never
needs them::

    e(x)     = the model's embedding of "<title>. <abstract>"
    c(x)     = unit(e(x) - mean of e over the cycle's papers)
    meaning  = unit(mean of c over the papers the profile learnt from)
    close(p) = c(p) . meaning                                     in [-1, 1]

Centring matters: raw cosines between any two abstracts of the day sit
near 0.8 and drown the differences; less the day's mean, "close" means
closer than the day's average paper. ``ranking.relevance`` scales
``close`` by the reader's best match, as it does the words.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from digest.errors import MissingExtraError
from digest.models import Paper

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    Matrix = NDArray[np.float64]
else:
    Matrix = Any

# texts -> one row each (any real-valued rows; normalised here)
Embed = Callable[[Sequence[str]], Sequence[Sequence[float]]]
Meaning = tuple[float, ...]  # a reader's unit vector; () when nothing to learn from

MODEL_DIM = 256  # l2_supercat_256: the weights the wordllama wheel carries
EXTRA = "pip install 'daily-papers-digest[semantic]'"


@functools.cache
def load() -> Embed:
    """The wordllama model from its own package folder, downloads disabled (once per process).

    Raises ``MissingExtraError`` (exit 78) when the extra is not installed or
    its weights are not in the package.
    """
    # One BLAS thread, before numpy loads: the products here are a few hundred
    # rows by 256, and OpenBLAS's idle threads spin for a while after each one;
    # measured on 1,000 readers, that doubled ranking's CPU (benchmarks/README.md).
    # An operator's own setting stands.
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    try:
        import wordllama  # the extra's one import
        from wordllama import WordLlama
    except ImportError as exc:
        raise MissingExtraError(
            f"settings.semantic is true, but wordllama is not installed ({exc}); "
            f"install the extra: {EXTRA}, or set semantic: false"
        ) from exc
    except Exception as exc:
        # installed but not importable: files the service's user cannot read, a
        # truncated module, no home directory for the uid (wordllama asks for one)
        raise MissingExtraError(
            f"settings.semantic is true, but wordllama could not be imported "
            f"({type(exc).__name__}: {exc}); reinstall the extra so that this user can read "
            f"it: {EXTRA}, or set semantic: false"
        ) from exc
    folder = Path(wordllama.__file__).parent
    try:
        # the package folder as the cache: wordllama looks for its tokenizer
        # under "tokenizers/" there, where the wheel puts it
        model = WordLlama.load(dim=MODEL_DIM, cache_dir=folder, disable_download=True)
        probe = model.embed(["graph neural networks"], norm=False)
        if len(probe) != 1 or len(probe[0]) != MODEL_DIM:
            raise ValueError(f"it embeds in {len(probe[0]) if len(probe) else 0} dimensions")
        if not all(math.isfinite(x) for x in probe[0]) or not any(probe[0]):
            raise ValueError("its weights give no usable embedding (not finite, or all zero)")
    except Exception as exc:
        # whatever a damaged install raises (a truncated safetensors file, a
        # tokenizer that is not JSON): the operator's fix is the same
        raise MissingExtraError(
            f"settings.semantic is true, but wordllama's {MODEL_DIM}-dimension model could "
            f"not be loaded from {folder} ({type(exc).__name__}: {exc}); reinstall the "
            f"extra: {EXTRA}"
        ) from exc

    def embed(texts: Sequence[str]) -> Sequence[Sequence[float]]:
        rows: Sequence[Sequence[float]] = model.embed(list(texts), norm=False)
        return rows

    return embed


TEXT_LIMIT = 4000  # characters embedded: arXiv abstracts stay under 1,920
MEMO_ROWS = 20_000  # texts outside the cycle kept embedded: ~40 MB, then embedded per reader


def text_of(title: str, abstract: str) -> str:
    """What is embedded of a paper; a library entry's text is cut, not its memory unbounded.

    A lone surrogate (JSON's "\\ud800" in a library file) becomes "?": the
    tokenizer takes only text that encodes as UTF-8.
    """
    text = (f"{title}. {abstract}" if abstract else title)[:TEXT_LIMIT]
    return text.encode("utf-8", "replace").decode("utf-8")


@dataclass(frozen=True, eq=False)
class Meanings:
    """The cycle's papers as centred unit embeddings (``c`` of the module docstring)."""

    ids: dict[str, int]
    matrix: Matrix  # one unit row per paper of the cycle, centred
    mean: Matrix
    embed: Embed
    # texts outside the cycle (liked papers of other days, papers beyond the
    # keywords, library entries): embedded once, readers share them; at most
    # MEMO_ROWS kept, so a thousand readers' libraries cannot fill the memory
    _memo: dict[tuple[str | None, str], Matrix] = field(default_factory=dict, repr=False)

    def centred(self, paper_id: str | None, title: str, abstract: str) -> Matrix:
        """``c`` of one text: the cycle's row when the paper is one of the cycle's."""
        row: Matrix = self._centred_all([(paper_id, title, abstract)])[0]
        return row

    def _centred_all(self, texts: Iterable[tuple[str | None, str, str]]) -> list[Matrix]:
        """``c`` of each text; those not yet known embedded in one call."""
        out: list[Matrix | None] = []
        todo: dict[tuple[str | None, str], list[int]] = {}
        for paper_id, title, abstract in texts:
            if paper_id is not None and paper_id in self.ids:
                out.append(self.matrix[self.ids[paper_id]])
                continue
            text = text_of(title, abstract)
            known = self._memo.get((paper_id, text))
            if known is None:
                todo.setdefault((paper_id, text), []).append(len(out))
            out.append(known)
        if todo:
            made = _centre(_rows(self.embed, [text for _, text in todo]), self.mean)
            for (key, places), row in zip(todo.items(), made, strict=True):
                if len(self._memo) < MEMO_ROWS:
                    self._memo[key] = row
                for at in places:
                    out[at] = row
        return [row for row in out if row is not None]  # every place is filled by now

    def meaning(self, texts: Iterable[tuple[str | None, str, str]]) -> Meaning:
        """A reader's ``meaning``: (paper id or None, title, abstract) of what they like."""
        return self.learn(texts)[0]

    def learn(
        self, texts: Iterable[tuple[str | None, str, str]]
    ) -> tuple[Meaning, tuple[Meaning, ...]]:
        """A reader's ``meaning`` and each text's ``c`` (kept with each liked paper), at once."""
        import numpy as np

        rows = self._centred_all(texts)
        if not rows:
            return (), ()
        each = np.stack(rows)
        mean = each.mean(axis=0)
        norm = float(np.linalg.norm(mean))
        meaning: Meaning = tuple((mean / norm).tolist()) if norm > 0 else ()
        return meaning, tuple(tuple(row) for row in each.tolist())

    def rows(self, papers: Sequence[Paper]) -> Matrix:
        """``c`` of each paper, one row each: the cycle's rows taken at once, others embedded."""
        import numpy as np

        at = [self.ids.get(p.id, -1) for p in papers]
        if all(i >= 0 for i in at):
            taken: Matrix = self.matrix[at]
            return taken
        return np.stack(self._centred_all((p.id, p.title, p.abstract) for p in papers))

    def closeness(self, meaning: Meaning, rows: Matrix) -> list[float]:
        """``close(p)`` for each row of ``rows`` (``rows(papers)``), in order."""
        import numpy as np

        if not meaning or not len(rows):
            return [0.0] * len(rows)
        close: list[float] = _rounded(rows @ np.asarray(meaning, dtype=np.float64))
        return close

    def to_each(self, sources: Sequence[Meaning], rows: Matrix) -> list[list[float]]:
        """For each row, its closeness to each source (a liked paper), in order."""
        import numpy as np

        if not sources or not len(rows):
            return [[] for _ in range(len(rows))]
        table: list[list[float]] = _rounded(rows @ np.asarray(sources, dtype=np.float64).T)
        return table


def _rounded(values: Matrix) -> Any:
    """As plain floats (nested like ``values``), rounded to 12 digits.

    A product's last bits depend on how many rows BLAS multiplied at once;
    12 digits keep a score's rounding (1e-9) from ever seeing them.
    """
    return values.round(12).tolist()


def build_meanings(papers: Sequence[Paper], embed: Embed) -> Meanings:
    """Embed the cycle's papers once and centre them on their mean."""
    import numpy as np

    ordered = sorted({p.id: p for p in papers}.items())
    texts = [text_of(p.title, p.abstract) for _, p in ordered]
    raw = _rows(embed, texts) if texts else np.zeros((0, 1))
    # the day's mean over texts that have a direction: blank ones would pull it to zero
    seen = raw[raw.any(axis=1)]
    mean = seen.mean(axis=0) if len(seen) else np.zeros(raw.shape[1])
    return Meanings(
        ids={pid: i for i, (pid, _) in enumerate(ordered)},
        matrix=_centre(raw, mean),
        mean=mean,
        embed=embed,
    )


def _rows(embed: Embed, texts: Sequence[str]) -> Matrix:
    """Unit rows; a text the model has no token for (empty, symbols) is a zero row."""
    import numpy as np

    raw = np.asarray(embed(texts), dtype=np.float64)
    raw = np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0)
    norms = np.linalg.norm(raw, axis=1, keepdims=True)
    out: Matrix = np.divide(raw, norms, out=np.zeros_like(raw), where=norms > 0)
    return out


def _centre(rows: Matrix, mean: Matrix) -> Matrix:
    """``c``: less the cycle's mean, unit length.

    A zero row (a text without a token the model knows) stays zero: less the
    mean it would point away from the day's average, a direction it never had.
    """
    import numpy as np

    if rows.shape[0] == 0:
        return rows
    blank = ~rows.any(axis=1, keepdims=True)
    centred = np.where(blank, 0.0, rows - mean)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    # a row at the mean itself has no direction: zero, not noise scaled up
    tiny = math.ulp(1.0) * 64
    out: Matrix = np.divide(centred, norms, out=np.zeros_like(centred), where=norms > tiny)
    return out
