"""`orqsync agreement`: how far the reviewers agree, key by key (reviews in orqsync.yaml)."""

from __future__ import annotations

from collections.abc import Hashable

from orqsync.errors import OrqsyncError
from orqsync.model import SpanId
from orqsync.review.agreement import Agreement, agreement, metric_for
from orqsync.source.desired import DesiredReader
from orqsync.source.project import PROJECT_FILE, Settings
from orqsync.source.reviews import ADJUDICATOR


def key_agreement(settings: Settings, only: tuple[str, ...] = ()) -> dict[str, Agreement]:
    """The figures of every key the reviewers voted on (or of the keys `only` names), from
    the annotation files; adjudications are not votes and are left out."""
    if settings.reviews is None:
        raise OrqsyncError(
            f"{PROJECT_FILE} has no `reviews`: each span's key has one author, so there is "
            "no agreement to measure",
            "add `reviews: {rule: majority}` to orqsync.yaml and give each reviewer's files "
            "`metadata: {reviewerId: NAME}`",
        )
    reader = DesiredReader(settings)
    for path in reader.paths:
        reader.add(path)
    desired = reader.result()
    ratings: dict[str, dict[SpanId, dict[str, Hashable]]] = {}
    for span, keys in desired.votes.items():
        for key, by in keys.items():
            votes: dict[str, Hashable] = {
                who: vote.value for who, vote in by.items() if who != ADJUDICATOR
            }
            if votes:  # an adjudication alone is no vote
                ratings.setdefault(key, {})[span] = votes
    unknown = [key for key in only if key not in ratings]
    if unknown:
        raise OrqsyncError(
            f"no reviewer voted on {', '.join(unknown)}",
            f"keys with votes: {', '.join(sorted(ratings)) or 'none'}",
        )
    return {
        key: agreement(ratings[key], metric_for(reader.definitions[key].type))
        for key in sorted(ratings)
        if not only or key in only
    }


def agreement_json(figures: dict[str, Agreement]) -> dict[str, object]:
    return {
        "keys": [
            {
                "key": key,
                "metric": item.metric,
                "items": item.items,
                "reviewers": item.reviewers,
                "values": item.values,
                "observed_agreement": item.observed,
                "krippendorff_alpha": item.alpha,
                "cohen_kappa": item.kappa,
            }
            for key, item in figures.items()
        ]
    }


def agreement_text(figures: dict[str, Agreement]) -> str:
    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    lines = [
        f"{'key':<20} {'metric':<9} {'items':>6} {'reviewers':>9} {'observed':>9} "
        f"{'alpha':>7} {'kappa':>7}"
    ]
    for key, item in figures.items():
        lines.append(
            f"{key:<20} {item.metric:<9} {item.items:>6} {item.reviewers:>9} "
            f"{number(item.observed):>9} {number(item.alpha):>7} {number(item.kappa):>7}"
        )
    lines.append(
        "observed: share of equal pairs of votes on one span; alpha: Krippendorff's (1 is "
        "full agreement, 0 chance); kappa: Cohen's, for two reviewers"
    )
    return "\n".join(lines) + "\n"
