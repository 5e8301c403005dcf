"""A small made-up day for ranking tests: papers of a few fields, likes, and matches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from digest import ranking
from digest.models import Liked, Match, Paper, Ranked

DAY = datetime(2026, 6, 9, tzinfo=UTC)


GRAPHS = (
    "We study graph neural networks for message passing on molecular graphs, "
    "with node embeddings and graph pooling for chemistry."
)


VISION = (
    "A convolutional network for image segmentation of street scenes, trained on "
    "pixel labels with a vision transformer backbone."
)


SPEECH = (
    "An end-to-end speech recognition system with acoustic features, phoneme "
    "decoding and audio augmentation for noisy recordings."
)


ROBOTS = (
    "A legged robot learns grasping and locomotion policies from teleoperated "
    "demonstrations, with tactile feedback on the gripper."
)


def paper(
    pid: str,
    title: str,
    abstract: str,
    *,
    minutes: int = 0,
    categories: tuple[str, ...] = ("cs.LG",),
    authors: tuple[str, ...] = (),
) -> Paper:
    when = DAY + timedelta(minutes=minutes)
    return Paper(
        id=pid,
        version=1,
        title=title,
        abstract=abstract,
        authors=authors or (f"Author of {pid}",),
        categories=categories,
        primary_category=categories[0],
        published=when,
        updated=when,
    )


def match(p: Paper, *keywords: str, authors: tuple[str, ...] = ()) -> Match:
    return Match(paper=p, keywords=keywords, authors=authors)


def ids(ranked: tuple[Ranked, ...]) -> list[str]:
    return [r.match.paper.id for r in ranked]


# a day of papers that all mention "learning" once, in three fields
DAYS_PAPERS = [
    paper("2606.00001", "Pooling for molecules", "Learning on graphs. " + GRAPHS, minutes=1),
    paper("2606.00002", "Street scenes", "Learning to segment. " + VISION, minutes=2),
    paper("2606.00003", "Noisy audio", "Learning to listen. " + SPEECH, minutes=3),
    paper("2606.00004", "Message passing", "Learning messages. " + GRAPHS, minutes=4),
    paper("2606.00005", "Pixels", "Learning pixels. " + VISION, minutes=5),
    paper("2606.00006", "Phonemes", "Learning phonemes. " + SPEECH, minutes=6),
]


LIKED_GRAPH = Liked(
    arxiv_id="2501.00001",
    title="Graph networks for chemistry",
    abstract="Message passing graph neural networks with node embeddings predict molecular "
    "properties; graph pooling summarises molecules.",
)


def day_matches() -> list[Match]:
    return [match(p, "learning") for p in DAYS_PAPERS]


def liked_by_graph() -> ranking.Profile:
    return ranking.build_profile(ranking.build_corpus(DAYS_PAPERS), [LIKED_GRAPH])
