"""Deliverability: SpamAssassin's local rules on a realistic day's digests.

Scores a representative sample of the day (tests/support/spam.py: the
largest digest, one with a followed-author section, the "nothing new" mail)
in one ``spamassassin -L -t --mbox`` run; benchmarks/spam_score.py scores the
whole day against main's templates. Skips where SpamAssassin is absent
(.ci/run installs it).
"""

from __future__ import annotations

import re

import pytest

from tests.support.programs import marks
from tests.support.spam import Verdict, day_messages, score_all

LIMIT = 1.0
# Rules that only the template can set off: hidden or low-contrast text (a
# preheader), words split across tags, long runs of long words in template
# text, broken or image-laden HTML, HTML-only mail, over-long QP lines.
TEMPLATE_RULES = re.compile(
    r"FONT_INVIS\w*|\w*INVIS\w*|HTML_FONT_\w+|\w*LOW_CONTRAST\w*|HTML_OBFUSCATE_\w+"
    r"|LONGWORDS|HTML_TAG_BALANCE_\w+|HTML_EXTRA_CLOSE|HTML_IMAGE_\w+|HTML_SHORT_LINK_IMG_\w+"
    r"|HTML_MIME_NO_HTML_TAG|MIME_HTML_ONLY|MIME_QP_LONG_LINE|T_REMOTE_IMAGE|HTML_TITLE_\w+"
)
pytestmark = marks("spamassassin")

SAMPLE = ("erin@example.org", "grace@example.org", "heidi@example.org")


@pytest.fixture(scope="module")
def verdicts() -> dict[str, Verdict]:
    day = dict(day_messages())
    assert set(SAMPLE) <= set(day)
    return dict(zip(SAMPLE, score_all([day[who] for who in SAMPLE]), strict=True))


def test_every_sampled_digest_scores_at_most_one_point(verdicts: dict[str, Verdict]) -> None:
    scores = {who: v.score for who, v in verdicts.items()}
    assert all(s <= LIMIT for s in scores.values()), scores


def test_no_template_caused_rule_fires(verdicts: dict[str, Verdict]) -> None:
    fired = {
        who: sorted(r for r in v.rules if TEMPLATE_RULES.fullmatch(r))
        for who, v in verdicts.items()
    }
    assert fired == {who: [] for who in verdicts}
