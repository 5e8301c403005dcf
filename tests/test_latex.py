"""LaTeX made readable: every construct keeps its meaning, real arXiv entries, and invariants."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest import latex
from digest.arxiv.feed import parse_page
from digest.compose import archive
from digest.compose.render import render
from digest.compose.selection import build_digest
from digest.matching.rules import match_all
from digest.models import Paper, Ranked, Settings, SmtpSettings, Subscriber
from tests.support.paths import FIXTURES

NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "source, expected",
    [
        # moved from test_compose.py (the first four keep their old expectations)
        (r"$\alpha \leq \beta^2$", "α≤β²"),
        (r"50% of $x_1$", "50% of x₁"),
        (r"unbalanced $x", "unbalanced $x"),
        (r"$\mathcal{O}(n \log n)$", "O(n log n)"),
        ("no latex here", "no latex here"),
        # a bare & is text, not an alignment tab
        (r"R&D with $x$", "R&D with x"),
        # fractions: only the parentheses precedence needs
        (r"$\frac{a+b}{c}$", "(a+b)/c"),
        (r"$\frac{1}{2}$", "1/2"),
        (r"$\frac{n}{\log n}$", "n/(log n)"),
        (r"${1\over 2}$", "1/2"),
        (r"${a+b \over c}$", "(a+b)/c"),
        (r"$\binom{n}{k}$", "C(n, k)"),
        # scripts: Unicode where every character has one, else grouped
        (r"$n^{r-1}$", "n^(r-1)"),
        (r"$10^{31}$", "10³¹"),
        (r"$10^{-25}$", "10⁻²⁵"),
        (r"$e^{i\pi}$", "e^(iπ)"),
        (r"$x_{ij}$", "x_ij"),
        (r"$x_{i+1}$", "x_(i+1)"),
        (r"$0.84_{-0.01}^{+0.01}$", "0.84_(-0.01)^(+0.01)"),
        (r"$\sum_{i=1}^N$", "∑_(i=1)^N"),
        (r"$37 ^{\circ}$C", "37 °C"),
        (r"theta_{13}", "theta₁₃"),
        ("a test_1 identifier and $x$", "a test_1 identifier and x"),
        # roots and norms
        (r"$\sqrt{n}$", "√n"),
        (r"$\sqrt{a+b}$", "√(a+b)"),
        (r"$\sqrt[3]{x}$", "∛x"),
        (r"$\|x\|_2$", "‖x‖₂"),
        # operator names do not run into the letter before them
        (r"$O(n\log n)$", "O(n log n)"),
        (r"$f\colon\mathbb R^n\to\mathbb R$", "f:ℝⁿ→ℝ"),
        # astral-plane math letters come out as the plain letter
        (r"$\mathbf{x}$", "x"),
        (r"$\mathbb{E}[X]$", "E[X]"),
        (r"$\mathbfθ$", "θ"),
        # text markup
        (r"as in \cite{knuth84}", "as in [cit.]"),
        (r"an \emph{open} question", "an open question"),
        (r"see~Fig.~2", "see Fig. 2"),
        (r"Erd\H{o}s and Schr\"odinger", "Erdős and Schrödinger"),
        (r"``quoted''", "“quoted”"),
        ("A -- B --- C", "A – B — C"),
        (r"$25\%$ and 13% of $x$", "25% and 13% of x"),
        # URLs are kept verbatim (a ~ there is not a space)
        (r"at http://a.edu/~gould/x_y.ps with $x$", "at http://a.edu/~gould/x_y.ps with x"),
        (r"\href{http://x.org}{here}", "here"),
    ],
)
def test_construct_keeps_its_meaning(source: str, expected: str) -> None:
    assert latex.text(source) == expected


def test_author_names_lose_their_tex_accents() -> None:
    assert latex.name(r"Oktay G\"unl\"uk") == "Oktay Günlük"
    assert latex.name(r"Paul Erd{\H o}s") == "Paul Erdős"
    assert latex.name("Ada Lovelace") == "Ada Lovelace"


def test_a_title_and_an_abstract_render_dashes_alike() -> None:
    title = "Expectations vs Reality -- A Secondary Study"
    abstract = r"Expectations vs Reality -- A Secondary Study of $n$ papers"
    assert latex.text(title) == "Expectations vs Reality – A Secondary Study"
    assert latex.text(abstract).startswith(latex.text(title))


# --- real arXiv entries (tests/fixtures, see PROVENANCE.md) ---------------------------------


def _entry(fixture: str, arxiv_id: str) -> Paper:
    page = parse_page((FIXTURES / fixture).read_bytes())
    return next(p for p in page.papers if p.id == arxiv_id)


ALL_100 = "api_new_2026-04_all-testing_start-0_max-100.xml"
OGLE = "api_new_2026-05_idlist-old-style-id_affiliations_journal-ref.xml"
PROTON_NEW = "api_new_2025-11_search_electron-AND-proton_10-entries_links-without-rel.xml"
PROTON_OLD = "api_legacy_2025-08_search_electron-AND-proton_10-entries.xml"


def test_real_abstract_keeps_an_ampersand_next_to_math() -> None:
    # astro-ph/0601001: "following Gould & Morgan (2003)" and $V_{\rm max}$-style math
    out = latex.text(_entry(OGLE, "astro-ph/0601001").abstract)
    assert "following Gould & Morgan (2003)" in out
    assert "3–5 day periods" in out and "only 4–16% of those" in out
    assert "(1/310)(1^(+1.39)_(-0.59))" in out


def test_real_comment_keeps_a_tilde_inside_its_url() -> None:
    out = latex.text(_entry(OGLE, "astro-ph/0601001").comment or "")
    assert "http://www.astronomy.ohio-state.edu/~gould/ogle_hot_jupiters.ps.gz" in out


def test_real_abstract_keeps_grouped_exponents_unambiguous() -> None:
    out = latex.text(_entry(PROTON_OLD, "hep-ph/9411242").abstract)
    assert "10³¹ to 10³²" in out  # was "10³1 to 10³2"
    assert "e⁺e⁻-collider" in out


def test_real_abstract_keeps_asymmetric_error_bars_grouped() -> None:
    out = latex.text(_entry(PROTON_NEW, "1205.6628").abstract)
    assert "r_E^p = 0.84_(-0.01)^(+0.01) fm" in out  # was "0.84_-0.01^+0.01"


def test_real_abstract_writes_degrees() -> None:
    out = latex.text(_entry(PROTON_OLD, "0806.3233").abstract)
    assert out.endswith("body temperature T ≈ 37 °C.")


def test_real_abstract_keeps_fraction_and_root_precedence() -> None:
    out = latex.text(_entry(ALL_100, "2106.13414").abstract)
    assert "Θ(√n)" in out and "Θ(n/log n)" in out and "ε₁ = ε₂/2" in out
    assert "Θ̃(√n/ε₂² + n/(log n) ·max{ε₁/ε₂²,(ε₁/ε₂²)²})" in out


def test_real_abstract_keeps_norms_and_plain_bold_letters() -> None:
    out = latex.text(_entry(ALL_100, "2405.11454").abstract)
    assert "smooth f:ℝⁿ→ℝ, x∈ℝⁿ" in out
    assert "∇ f(x)/‖∇ f(x)‖" in out and "O(n log(1/ε))" in out
    assert all(ord(c) < 0x10000 for c in out)


def test_real_abstract_keeps_a_bold_greek_letter() -> None:
    out = latex.text(_entry(ALL_100, "2507.16734").abstract)
    assert "X ∼ N(θ, I_∞), where θ ∈ Γ⊂ℓ₂" in out  # θ was dropped


def test_real_abstract_keeps_negative_exponents() -> None:
    out = latex.text(_entry(ALL_100, "2007.09895").abstract)
    assert "Õ(ε⁻²) queries" in out and "Õ(ε⁻²⁰)-query" in out
    assert "Θ̃(√(log N) ·ε⁻²)" in out


def test_real_abstract_and_title_keep_ampersands_and_dashes() -> None:
    p = _entry(ALL_100, "2012.06822")
    assert latex.text(p.title).startswith("Digital Twins Are Not Monozygotic – Cross")
    assert latex.text(p.abstract).count("V&V") == 2


def test_real_abstract_drops_emphasis_markup() -> None:
    out = latex.text(_entry(ALL_100, "1904.08007").abstract)
    assert "AFP tools face the oracle problem." in out


def test_real_abstract_turns_a_tie_into_a_space() -> None:
    out = latex.text(_entry(ALL_100, "1706.00679").abstract)
    assert "on the index set of X and" in out and "(it detects sparse" in out


# --- every field of a rendered digest and of the archive page goes through it ---------------


def _tex_paper() -> Paper:
    return Paper(
        id="2611.00001",
        version=1,
        title="Compilers -- a survey",
        abstract=r"R&D on compilers costs ${1\over 2}$ of $n^{r-1}$.",
        authors=(r"Oktay G\"unl\"uk", "Ada Lovelace"),
        categories=("cs.PL",),
        primary_category="cs.PL",
        published=NOW,
        updated=NOW,
        comment=r"12 pages, $\frac{1}{2}$ of them appendix",
    )


def test_every_field_of_the_digest_is_converted() -> None:
    sub = Subscriber(email="a@example.org", name="A", keywords=("compiler",))
    settings = Settings(smtp=SmtpSettings(sender="Papers <papers@digest.test>"))
    digest = build_digest(
        sub,
        [Ranked(m, 0.0) for m in match_all([_tex_paper()], sub)],
        max_per_keyword=5,
        cycle_id="c",
        created=NOW,
    )
    text = render(digest, settings).text
    for shown in ("Compilers – a survey", "R&D on compilers costs 1/2 of n^(r-1).", "Günlük"):
        assert shown in text
    assert "12 pages, 1/2 of them appendix" in text


def test_every_field_of_the_archive_page_is_converted() -> None:
    page = archive.render(["compiler"], [_tex_paper()], NOW)
    assert "Compilers – a survey" in page
    assert "R&amp;D on compilers costs 1/2 of n^(r-1)." in page
    assert "12 pages, 1/2 of them appendix" in page


# --- invariants ---------------------------------------------------------------------------

_PIECES = st.sampled_from(
    [
        "a", "x", "1", " ", "&", "<", ">", "%", "$", "^", "_", "{", "}", "~", "--", "\\",
        r"\frac{a}{b}", r"\over", r"\sqrt", r"\alpha", r"\mathcal{O}", r"\mathbf{x}",
        r"\|", r"\emph{e}", r"\cite{k}", r"\"u", r"\mathbb{E}", "http://a.b/~c_d", "é",
    ]
)  # fmt: skip


@given(st.lists(_PIECES, max_size=30).map("".join))
def test_conversion_never_raises_nor_adds_dollars_or_astral_letters(source: str) -> None:
    out = latex.text(source)
    assert out.count("$") <= source.count("$")
    assert {c for c in out if ord(c) >= 0x10000} <= set(source)


@given(st.lists(st.sampled_from(["&", "<", ">", "a", " ", "$x$", r"\alpha", "--"]), max_size=30))
def test_ampersands_and_angle_brackets_survive_as_text(pieces: list[str]) -> None:
    source = "".join(pieces)
    out = latex.text(source)
    for c in "&<>":
        assert out.count(c) == source.count(c)
