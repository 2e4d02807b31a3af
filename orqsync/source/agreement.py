"""How far reviewers agree on one key: observed agreement, Cohen's kappa, Krippendorff's alpha.

The figures of issue 18 (several reviewers per span), pure and independent of where the votes
come from: `ratings` maps each item (a span) to each reviewer's value. Only items that at
least two reviewers rated count ("pairable" values, in Krippendorff's words).

- Observed agreement: of the ordered pairs of values given to one item by two reviewers, the
  share that are equal.
- Cohen's kappa, for exactly two reviewers: (p_o - p_e) / (1 - p_e) over the items both
  rated, p_e from each reviewer's own distribution of values.
- Krippendorff's alpha: 1 - D_o / D_e with the distance that fits the key's type: nominal
  (0 or 1) for single selects, booleans and text; interval ((a - b) squared) for ranges; for
  multi selects MASI (Passonneau 2006: 1 - Jaccard x monotonicity) or Jaccard. D_o averages the
  distances within items, each item weighted by 1 / (m - 1) for its m values; D_e those of
  every pair of pairable values. Computed from counts of distinct values (and, for interval,
  from sums), so a key with 100,000 items costs time in its distinct values, not its pairs.

Alpha is None where it is 0 / 0: no item has two values, or every value is the same.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

NOMINAL = "nominal"
INTERVAL = "interval"
MASI = "masi"
JACCARD = "jaccard"

Distance = Callable[[Hashable, Hashable], float]
_Item = TypeVar("_Item", bound=Hashable)  # what is rated: a span


def metric_for(definition_type: str) -> str:
    """The distance that fits a definition's type (source/definitions.py TYPES)."""
    if definition_type == "range":
        return INTERVAL
    if definition_type == "multi_select":
        return MASI
    return NOMINAL


def nominal(a: Hashable, b: Hashable) -> float:
    return 0.0 if a == b else 1.0


def jaccard(a: Hashable, b: Hashable) -> float:
    """1 - |A and B| / |A or B| of two multi-select values (two empty sets: 0)."""
    left, right = set(a), set(b)  # type: ignore[call-overload]
    union = left | right
    return 0.0 if not union else 1.0 - len(left & right) / len(union)


def masi(a: Hashable, b: Hashable) -> float:
    """MASI distance: 1 - Jaccard x M, M = 1 (equal), 2/3 (one holds the other), 1/3 (they
    overlap), 0 (disjoint)."""
    left, right = set(a), set(b)  # type: ignore[call-overload]
    if left == right:
        return 0.0
    shared = left & right
    if not shared:
        return 1.0
    monotonicity = 2 / 3 if left <= right or right <= left else 1 / 3
    return 1.0 - len(shared) / len(left | right) * monotonicity


DISTANCES: dict[str, Distance] = {NOMINAL: nominal, MASI: masi, JACCARD: jaccard}


@dataclass(frozen=True, slots=True)
class Agreement:
    """The figures of one key."""

    metric: str
    items: int  # items at least two reviewers rated
    reviewers: int  # reviewers who rated any of them
    values: int  # pairable values
    observed: float | None  # share of equal pairs of values within items
    alpha: float | None
    kappa: float | None = None  # Cohen's, with exactly two reviewers

    def to_json(self) -> dict[str, object]:
        return {
            "metric": self.metric,
            "items": self.items,
            "reviewers": self.reviewers,
            "values": self.values,
            "observed_agreement": self.observed,
            "krippendorff_alpha": self.alpha,
            "cohen_kappa": self.kappa,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Agreement:
        """The inverse of to_json; KeyError, TypeError or ValueError for anything else."""

        def share(name: str) -> float | None:
            value = data[name]
            return None if value is None else float(value)

        return cls(
            str(data["metric"]),
            int(data["items"]),
            int(data["reviewers"]),
            int(data["values"]),
            share("observed_agreement"),
            share("krippendorff_alpha"),
            share("cohen_kappa"),
        )


def agreement(ratings: Mapping[_Item, Mapping[str, Hashable]], metric: str = NOMINAL) -> Agreement:
    """The figures of one key's `ratings` (item -> reviewer -> value); multi-select values
    are tuples or frozensets."""
    units = [list(votes.values()) for votes in ratings.values() if len(votes) >= 2]
    reviewers = {who for votes in ratings.values() if len(votes) >= 2 for who in votes}
    values = sum(len(unit) for unit in units)
    pairable = {item: votes for item, votes in ratings.items() if len(votes) >= 2}
    kappa = cohen_kappa(pairable) if len(reviewers) == 2 else None
    return Agreement(
        metric,
        len(units),
        len(reviewers),
        values,
        observed_agreement(units),
        krippendorff_alpha(units, metric),
        kappa,
    )


def observed_agreement(units: Sequence[Sequence[Hashable]]) -> float | None:
    pairs = agreeing = 0
    for unit in units:
        m = len(unit)
        if m < 2:
            continue
        pairs += m * (m - 1)
        agreeing += sum(count * (count - 1) for count in Counter(unit).values())
    return agreeing / pairs if pairs else None


def cohen_kappa(ratings: Mapping[_Item, Mapping[str, Hashable]]) -> float | None:
    """Cohen's kappa of the two reviewers of `ratings`, over the items both rated."""
    names = sorted({who for votes in ratings.values() for who in votes})
    if len(names) != 2:
        return None
    first, second = names
    pairs = [
        (votes[first], votes[second])
        for votes in ratings.values()
        if first in votes and second in votes
    ]
    if not pairs:
        return None
    total = len(pairs)
    p_o = sum(1 for a, b in pairs if a == b) / total
    left = Counter(a for a, _ in pairs)
    right = Counter(b for _, b in pairs)
    p_e = sum(left[value] * right[value] for value in left) / (total * total)
    return None if p_e == 1 else (p_o - p_e) / (1 - p_e)


def krippendorff_alpha(units: Sequence[Sequence[Hashable]], metric: str = NOMINAL) -> float | None:
    """Krippendorff's alpha of the values of `units` (each the values one item got)."""
    pairable = [unit for unit in units if len(unit) >= 2]
    n = sum(len(unit) for unit in pairable)
    if n < 2:
        return None
    if metric == INTERVAL:
        within = sum(_squared_pairs(unit) / (len(unit) - 1) for unit in pairable)
        between = _squared_pairs([value for unit in pairable for value in unit])
    else:
        distance = DISTANCES[metric]
        cache: dict[tuple[Hashable, Hashable], float] = {}
        within = sum(_pairs(Counter(unit), distance, cache) / (len(unit) - 1) for unit in pairable)
        between = _pairs(Counter(v for unit in pairable for v in unit), distance, cache)
    observed = within / n
    expected = between / (n * (n - 1))
    if expected == 0:
        return None
    return 1.0 - observed / expected


def _pairs(
    counts: Counter[Hashable],
    distance: Distance,
    cache: dict[tuple[Hashable, Hashable], float],
) -> float:
    """The sum of `distance` over the ordered pairs of distinct values (by position)."""
    total = 0.0
    distinct = list(counts.items())
    for index, (a, count_a) in enumerate(distinct):
        for b, count_b in distinct[index + 1 :]:
            d = cache.get((a, b))
            if d is None:
                d = cache[(a, b)] = distance(a, b)
            total += 2 * count_a * count_b * d
    return total


def _squared_pairs(values: Iterable[Hashable]) -> float:
    """The sum of (a - b) squared over the ordered pairs of `values`: 2 m times the sum of
    squared deviations from their mean (no cancellation, unlike 2 m S2 - 2 S1 squared)."""
    numbers = [float(value) for value in values]  # type: ignore[arg-type]
    m = len(numbers)
    mean = math.fsum(numbers) / m
    return 2 * m * math.fsum((x - mean) ** 2 for x in numbers)
