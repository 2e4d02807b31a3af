"""resolve(): one value from several reviewers' votes on a span's key, by a declared rule.

Issue 18 (several reviewers per span): orq.ai holds one value per key per span, so the votes
are resolved before planning. Pure; the rules, and the types each fits:

| rule              | value                                                   | types        |
|-------------------|---------------------------------------------------------|--------------|
| `majority`        | the value with the most votes; a tie for the most: none | every type   |
| `unanimous`       | the value every reviewer gave; a disagreement: none     | every type   |
| `priority`        | the vote of the first reviewer of the list who voted    | every type   |
| `median`          | the median of the votes (two middle ones: their mean)   | range        |
| `option_majority` | the options more than half the reviewers chose; an      | multi_select |
|                   | option exactly half chose: none                         |              |

An adjudicated value (an adjudication file's) wins over the votes, whatever the rule.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass

from orqsync.model import Label, same_value
from orqsync.source.values import canonical_number
from orqsync.text import plural

MAJORITY = "majority"
UNANIMOUS = "unanimous"
PRIORITY = "priority"
MEDIAN = "median"
OPTION_MAJORITY = "option_majority"
ADJUDICATED = "adjudicated"

RULES = (MAJORITY, UNANIMOUS, PRIORITY, MEDIAN, OPTION_MAJORITY)
_EVERY_TYPE = ("single_select", "multi_select", "range", "text", "boolean")
TYPES_OF = {
    MAJORITY: _EVERY_TYPE,
    UNANIMOUS: _EVERY_TYPE,
    PRIORITY: _EVERY_TYPE,
    MEDIAN: ("range",),
    OPTION_MAJORITY: ("multi_select",),
}


@dataclass(frozen=True, slots=True)
class Resolution:
    """What the votes on one span's key come to: `value` None when they do not resolve
    (`why` says what stands in the way), with the rule that decided and every vote."""

    value: Label | None
    rule: str
    votes: tuple[tuple[str, Label], ...]  # (reviewer, value), sorted by reviewer
    why: str = ""

    @property
    def resolved(self) -> bool:
        return self.value is not None


def fits(rule: str, definition_type: str) -> bool:
    """Whether `rule` resolves values of `definition_type`."""
    return definition_type in TYPES_OF.get(rule, ())


def resolve(
    votes: Mapping[str, Label],
    rule: str,
    *,
    priority: tuple[str, ...] = (),
    adjudicated: Label | None = None,
) -> Resolution:
    """The value `votes` (reviewer -> value) come to under `rule`."""
    cast = tuple(sorted(votes.items()))
    if adjudicated is not None:
        return Resolution(adjudicated, ADJUDICATED, cast)
    if not votes:
        return Resolution(None, rule, cast, "no votes")
    if rule == MAJORITY:
        return _majority(cast)
    if rule == UNANIMOUS:
        first = cast[0][1]
        if all(same_value(value, first) for _, value in cast):
            return Resolution(first, rule, cast)
        return Resolution(None, rule, cast, "the reviewers disagree")
    if rule == PRIORITY:
        for reviewer in priority:
            if reviewer in votes:
                return Resolution(votes[reviewer], rule, cast)
        return Resolution(None, rule, cast, "no reviewer of the priority list voted")
    if rule == MEDIAN:
        numbers = [value for _, value in cast]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
            raise ValueError("median resolves numbers only")
        return Resolution(_median(numbers), rule, cast)  # type: ignore[arg-type]
    if rule == OPTION_MAJORITY:
        return _option_majority(cast)
    raise ValueError(f"unknown rule {rule!r}")


def _majority(cast: tuple[tuple[str, Label], ...]) -> Resolution:
    tally: list[tuple[Label, int]] = []  # same_value keeps true and 1 apart
    for _, value in cast:
        for index, (held, count) in enumerate(tally):
            if same_value(held, value):
                tally[index] = (held, count + 1)
                break
        else:
            tally.append((value, 1))
    most = max(count for _, count in tally)
    leaders = [value for value, count in tally if count == most]
    if len(leaders) > 1:
        why = f"a tie: {len(leaders)} values have {plural(most, 'vote', grouped=False)}"
        return Resolution(None, MAJORITY, cast, why)
    return Resolution(leaders[0], MAJORITY, cast)


def _option_majority(cast: tuple[tuple[str, Label], ...]) -> Resolution:
    reviewers = len(cast)
    chosen: dict[str, int] = {}
    for _, value in cast:
        if not isinstance(value, tuple):
            raise ValueError("option_majority resolves multi-select values only")
        for option in value:
            chosen[option] = chosen.get(option, 0) + 1
    halves = sorted(option for option, count in chosen.items() if 2 * count == reviewers)
    if halves:
        return Resolution(
            None,
            OPTION_MAJORITY,
            cast,
            f"a tie on {', '.join(halves)}: exactly half the reviewers chose it",
        )
    kept = tuple(sorted(option for option, count in chosen.items() if 2 * count > reviewers))
    if not kept:  # orq.ai takes no empty multi select, and none was written
        return Resolution(None, OPTION_MAJORITY, cast, "no option has more than half the votes")
    return Resolution(kept, OPTION_MAJORITY, cast)


def _median(numbers: list[int | float]) -> int | float:
    """The median, as the votes write numbers: 0.1 and 0.2 give 0.15 (not
    0.15000000000000002), 1 and 3 give 2 (not 2.0)."""
    middle = statistics.median(numbers)
    places = max(_decimals(number) for number in numbers) + 1  # a mean of two halves
    return canonical_number(round(float(middle), places))


def _decimals(number: int | float) -> int:
    text = repr(number)
    if "e" in text or "E" in text:
        return 15
    return len(text.partition(".")[2])
