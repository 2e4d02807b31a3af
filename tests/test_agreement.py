"""Agreement between reviewers (orqsync/source/agreement.py), against the `krippendorff`
package on random data, a brute-force reference for the set distances, and known examples."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Hashable

import pytest

from orqsync.source.agreement import (
    INTERVAL,
    JACCARD,
    MASI,
    NOMINAL,
    agreement,
    cohen_kappa,
    jaccard,
    krippendorff_alpha,
    masi,
    metric_for,
    observed_agreement,
)

krippendorff = pytest.importorskip("krippendorff")  # a test-only dependency, in the lock
numpy = pytest.importorskip("numpy")


def random_ratings(
    rng: random.Random, reviewers: int, items: int, draw: object, missing: float = 0.3
) -> dict[int, dict[str, Hashable]]:
    ratings: dict[int, dict[str, Hashable]] = {}
    for item in range(items):
        votes = {
            f"r{who}": draw(rng)  # type: ignore[operator]
            for who in range(reviewers)
            if rng.random() >= missing
        }
        ratings[item] = votes
    return ratings


def package_alpha(ratings: dict[int, dict[str, Hashable]], reviewers: int, level: str) -> float:
    """The krippendorff package's alpha: reviewers x items, nan where a reviewer is silent."""
    matrix = numpy.full((reviewers, len(ratings)), numpy.nan)
    for item, votes in ratings.items():
        for who, value in votes.items():
            matrix[int(who[1:]), item] = value
    return float(krippendorff.alpha(reliability_data=matrix, level_of_measurement=level))


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize(
    ("metric", "draw"),
    [
        (NOMINAL, lambda rng: rng.choice([0, 1, 2])),  # a single select's options, coded
        (NOMINAL, lambda rng: rng.random() < 0.7),  # a boolean, skewed
        (INTERVAL, lambda rng: round(rng.uniform(0, 1), 3)),  # a range
        (INTERVAL, lambda rng: rng.randint(1, 5)),  # a 1 to 5 score
    ],
    ids=["nominal-3", "nominal-bool", "interval-unit", "interval-1to5"],
)
def test_alpha_matches_the_krippendorff_package(seed: int, metric: str, draw: object) -> None:
    rng = random.Random(seed)
    reviewers = rng.randint(2, 5)
    ratings = random_ratings(rng, reviewers, rng.randint(5, 60), draw)
    units = [list(votes.values()) for votes in ratings.values()]
    ours = krippendorff_alpha(units, metric)
    theirs = package_alpha(ratings, reviewers, metric)
    if ours is None:
        assert math.isnan(theirs) or theirs in (0.0, 1.0)
    else:
        assert ours == pytest.approx(theirs, abs=1e-9)


def brute_force_alpha(units: list[list[Hashable]], distance: object) -> float | None:
    """Krippendorff's definition, pair by pair."""
    pairable = [unit for unit in units if len(unit) >= 2]
    values = [value for unit in pairable for value in unit]
    n = len(values)
    observed = (
        sum(
            sum(distance(a, b) for a, b in itertools.permutations(unit, 2)) / (len(unit) - 1)  # type: ignore[operator]
            for unit in pairable
        )
        / n
    )
    expected = sum(distance(a, b) for a, b in itertools.permutations(values, 2)) / (n * (n - 1))  # type: ignore[operator]
    return None if expected == 0 else 1 - observed / expected


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize(("metric", "distance"), [(MASI, masi), (JACCARD, jaccard)])
def test_set_distances_match_the_definition_pair_by_pair(
    seed: int, metric: str, distance: object
) -> None:
    rng = random.Random(seed)
    options = ["grammar", "spelling", "hallucination", "ambiguity"]

    def draw(rng: random.Random) -> tuple[str, ...]:
        return tuple(sorted(rng.sample(options, rng.randint(1, 3))))

    ratings = random_ratings(rng, rng.randint(2, 4), rng.randint(5, 30), draw)
    units = [list(votes.values()) for votes in ratings.values()]
    ours = krippendorff_alpha(units, metric)
    reference = brute_force_alpha(units, distance)
    assert (ours is None) == (reference is None)
    if ours is not None:
        assert ours == pytest.approx(reference, abs=1e-12)


def test_masi_distances_of_the_four_cases() -> None:
    assert masi(("a", "b"), ("a", "b")) == 0
    assert masi(("a",), ("a", "b")) == pytest.approx(1 - 0.5 * 2 / 3)  # one holds the other
    assert masi(("a", "b"), ("b", "c")) == pytest.approx(1 - (1 / 3) * (1 / 3))  # overlap
    assert masi(("a",), ("b",)) == 1  # disjoint
    assert jaccard(("a", "b"), ("b", "c")) == pytest.approx(2 / 3)


def test_cohens_kappa_of_the_textbook_example() -> None:
    # 50 items: both yes 20, A yes B no 5, A no B yes 10, both no 15 -> p_o .7, p_e .5
    pairs = [("yes", "yes")] * 20 + [("yes", "no")] * 5 + [("no", "yes")] * 10
    pairs += [("no", "no")] * 15
    ratings = {item: {"a": a, "b": b} for item, (a, b) in enumerate(pairs)}
    assert cohen_kappa(ratings) == pytest.approx(0.4)
    figures = agreement(ratings)
    assert (figures.items, figures.reviewers, figures.values) == (50, 2, 100)
    assert figures.observed == pytest.approx(0.7)
    assert figures.kappa == pytest.approx(0.4)
    # alpha corrects p_e with the pooled distribution, and for the sample size
    theirs = package_alpha(
        {i: {"r0": int(a == "yes"), "r1": int(b == "yes")} for i, (a, b) in enumerate(pairs)},
        2,
        NOMINAL,
    )
    assert figures.alpha == pytest.approx(theirs)


def test_figures_leave_out_what_cannot_be_compared() -> None:
    ratings: dict[int, dict[str, Hashable]] = {
        1: {"alice": "good"},  # one reviewer: not pairable
        2: {"alice": "good", "bob": "good", "carol": "bad"},
        3: {"bob": "bad", "carol": "bad"},
    }
    figures = agreement(ratings)
    assert (figures.items, figures.reviewers, figures.values, figures.kappa) == (2, 3, 5, None)
    assert figures.observed == pytest.approx((2 + 2) / (6 + 2))
    assert observed_agreement([]) is None
    assert krippendorff_alpha([["good", "good"], ["good", "good"]]) is None  # all equal: 0 / 0
    assert krippendorff_alpha([["good"]]) is None


def test_each_type_has_its_metric() -> None:
    assert [metric_for(t) for t in ("single_select", "boolean", "text")] == [NOMINAL] * 3
    assert (metric_for("range"), metric_for("multi_select")) == (INTERVAL, MASI)
