"""Resolution of several reviewers' votes on one key (orqsync/planning/resolve.py)."""

from __future__ import annotations

import pytest

from orqsync.source.resolve import (
    ADJUDICATED,
    MAJORITY,
    MEDIAN,
    OPTION_MAJORITY,
    PRIORITY,
    UNANIMOUS,
    fits,
    resolve,
)


def test_majority_takes_the_value_with_the_most_votes_and_leaves_a_tie_open() -> None:
    assert resolve({"a": "bad", "b": "bad", "c": "good"}, MAJORITY).value == "bad"
    tie = resolve({"a": "bad", "b": "good"}, MAJORITY)
    assert (tie.value, tie.resolved, tie.why) == (None, False, "a tie: 2 values have 1 vote")
    assert tie.votes == (("a", "bad"), ("b", "good"))  # every vote, for the listing
    # true is never 1
    assert resolve({"a": True, "b": 1, "c": True}, MAJORITY).value is True
    assert resolve({"a": True, "b": 1}, MAJORITY).value is None


def test_unanimous_needs_every_reviewer() -> None:
    assert resolve({"a": 0.5, "b": 0.5}, UNANIMOUS).value == 0.5
    split = resolve({"a": 0.5, "b": 0.5, "c": 0.6}, UNANIMOUS)
    assert (split.value, split.why) == (None, "the reviewers disagree")


def test_priority_takes_the_first_listed_reviewer_who_voted() -> None:
    votes = {"alice": "good", "bob": "bad", "carol": "bad"}
    assert resolve(votes, PRIORITY, priority=("dave", "bob", "alice")).value == "bad"
    nobody = resolve(votes, PRIORITY, priority=("dave",))
    assert (nobody.value, nobody.why) == (None, "no reviewer of the priority list voted")


def test_median_of_a_range_and_option_majority_of_a_multi_select() -> None:
    assert resolve({"a": 0.2, "b": 0.9, "c": 0.4}, MEDIAN).value == 0.4
    assert resolve({"a": 1, "b": 2, "c": 3, "d": 10}, MEDIAN).value == 2.5
    votes = {
        "a": ("hallucination", "spelling"),
        "b": ("hallucination",),
        "c": ("ambiguity", "hallucination", "spelling"),
    }
    assert resolve(votes, OPTION_MAJORITY).value == ("hallucination", "spelling")
    half = resolve({"a": ("spelling",), "b": ()}, OPTION_MAJORITY)
    assert (half.value, half.why) == (
        None,
        "a tie on spelling: exactly half the reviewers chose it",
    )
    with pytest.raises(ValueError, match="multi-select values only"):
        resolve({"a": "good"}, OPTION_MAJORITY)
    with pytest.raises(ValueError, match="numbers only"):
        resolve({"a": True}, MEDIAN)


def test_an_adjudicated_value_wins_over_any_rule() -> None:
    settled = resolve({"a": "bad", "b": "good"}, MAJORITY, adjudicated="good")
    assert (settled.value, settled.rule) == ("good", ADJUDICATED)
    assert settled.votes == (("a", "bad"), ("b", "good"))


def test_each_rule_names_the_types_it_fits() -> None:
    assert fits(MAJORITY, "text") and fits(UNANIMOUS, "boolean")
    assert fits(MEDIAN, "range") and not fits(MEDIAN, "single_select")
    assert fits(OPTION_MAJORITY, "multi_select") and not fits(OPTION_MAJORITY, "range")
    assert not fits("average", "range")


def test_an_option_majority_that_keeps_no_option_stays_open() -> None:
    # orq.ai takes no empty multi select
    split = resolve({"a": ("a",), "b": ("a",), "c": ("c",), "d": ("b",)}, OPTION_MAJORITY)
    assert split.value is None and "a tie on a" in split.why
    none = resolve({"a": ("a",), "b": ("b",), "c": ("c",)}, OPTION_MAJORITY)
    assert (none.value, none.why) == (None, "no option has more than half the votes")


def test_a_median_is_written_as_the_votes_are() -> None:
    assert resolve({"a": 0.1, "b": 0.2}, MEDIAN).value == 0.15
    assert resolve({"a": 0.81, "b": 0.8}, MEDIAN).value == 0.805
    two = resolve({"a": 1, "b": 3}, MEDIAN).value
    assert two == 2 and type(two) is int


# The ballot's shortcut for votes that are all alike gives what resolve() gives ----------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from orqsync.model import Annotation  # noqa: E402
from orqsync.source import reviews as reviews_module  # noqa: E402
from orqsync.source.project import Reviews  # noqa: E402
from orqsync.source.reviews import ADJUDICATOR, Ballot  # noqa: E402

KEYS = {  # key -> (rule, the values a vote may take)
    "rating": ("majority", ["good", "bad", True, 1, 1.0]),
    "strict": ("unanimous", ["good", "bad"]),
    "tags": ("option_majority", [(), ("a",), ("a", "b"), ("b",)]),
    "score": ("median", [0.1, 0.2, 1, 1.0]),
    "first": ("priority", ["x", "y"]),
}
METADATA = [(("source", "orqsync"),), (("identityId", "u1"), ("source", "orqsync")), ()]


@st.composite
def ballots(draw: st.DrawFn) -> dict:
    votes: dict = {}
    for span in draw(st.lists(st.sampled_from(["s1", "s2", "s3"]), unique=True, min_size=1)):
        for key in draw(st.lists(st.sampled_from(sorted(KEYS)), unique=True, min_size=1)):
            who = draw(
                st.lists(
                    st.sampled_from(["alice", "bob", "carol", ADJUDICATOR]), unique=True, min_size=1
                )
            )
            by = {}
            for line, reviewer in enumerate(who):
                value = draw(st.sampled_from(KEYS[key][1]))
                extra = draw(st.sampled_from(METADATA))
                metadata = tuple(sorted((*extra, ("reviewerId", reviewer))))
                path = draw(st.sampled_from(["a.yaml", "b.yaml"]))
                by[reviewer] = Annotation(value, metadata, path, line + 1)
            votes.setdefault(("t", span), {})[key] = by
    return votes


def resolved(votes: dict, shortcut: bool) -> tuple[object, ...]:
    rules = {key: rule for key, (rule, _) in KEYS.items()}
    ballot = Ballot(Reviews(rule="majority", priority=("bob", "alice"), keys=rules), votes=votes)
    spans: dict = {}
    kept = reviews_module._ALIKE_RULES
    if not shortcut:
        reviews_module._ALIKE_RULES = frozenset()
    try:
        unresolved, reviewed = ballot.resolve(spans, (("source", "default"),))
    finally:
        reviews_module._ALIKE_RULES = kept
    typed = {
        span: {key: (type(a.value), a) for key, a in keys.items()} for span, keys in spans.items()
    }
    return typed, unresolved, reviewed


@settings(max_examples=300, deadline=None)
@given(ballots())
def test_the_shortcut_for_alike_votes_resolves_as_resolve_does(votes: dict) -> None:
    assert resolved(votes, shortcut=True) == resolved(votes, shortcut=False)
