"""Several reviewers per span (orqsync.yaml `reviews`): votes collected while the annotation
files are read, then resolved into the one value per key that orq.ai holds.

With `reviews`, a span's key may be declared once per reviewer: the annotation's metadata
`reviewerId` (the file's or the span's) names the reviewer; a file that
`reviews.adjudication` matches settles a key whatever the votes. The rule is the project's
(`reviews.rule`) or the key's (`reviews.keys`); resolve.py says what each does. A key whose
votes do not resolve is not planned: it stays in orq.ai as it is, and is listed, with every
vote, as a warning.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from orqsync.errors import Problem
from orqsync.model import Annotation, Metadata, Review, SpanId, Value, value_json
from orqsync.source.agreement import Agreement, agreement, metric_for
from orqsync.source.definitions import Definitions
from orqsync.source.project import PROJECT_FILE, Reviews, Settings
from orqsync.source.resolve import (
    MAJORITY,
    OPTION_MAJORITY,
    PRIORITY,
    UNANIMOUS,
    Resolution,
    fits,
    resolve,
)

ADJUDICATOR = "@adjudication"  # the reviewer an adjudication file votes as (a reviewerId
# cannot start with @: desired.py refuses it)


def check_reviews(settings: Settings, definitions: Definitions) -> list[Problem]:
    """What is wrong with orqsync.yaml's `reviews` given the definitions, offline."""
    reviews = settings.reviews
    if reviews is None:
        return []
    problems = []

    def problem(where: str, message: str, hint: str) -> None:
        line, column = settings.where(where)
        if line is None:
            line, column = settings.where("reviews")
        problems.append(Problem(PROJECT_FILE, line, column, message, hint))

    for key, rule in sorted(reviews.keys.items()):
        definition = definitions.get(key)
        where = f"reviews.keys.{key}"
        if definition is None:
            problem(where, f'reviews.keys: "{key}" is not a key of definitions.yaml', "remove it")
        elif not fits(rule, definition.type):
            problem(
                where,
                f"reviews.keys: {rule} does not resolve {key}, a {definition.type}",
                "median resolves a range, option_majority a multi select; majority, "
                "unanimous and priority any key",
            )
    uses_priority = reviews.rule == PRIORITY or PRIORITY in reviews.keys.values()
    if uses_priority and not reviews.priority:
        problem(
            "reviews.rule" if reviews.rule == PRIORITY else "reviews.keys",
            "reviews: the priority rule needs reviews.priority, the reviewers in order",
            "add `priority: [alice, bob]` under reviews",
        )
    return problems


@dataclass(frozen=True, slots=True)
class Unresolved:
    """A span's key whose votes do not resolve: not planned, listed."""

    span: SpanId
    key: str
    resolution: Resolution
    path: str
    line: int

    def problem(self, hide: bool = False) -> Problem:
        """The warning that lists the key; `hide`: a text key's votes as their lengths
        (--redact)."""
        trace_id, span_id = self.span
        votes = ", ".join(f"{who} {_shown(value, hide)}" for who, value in self.resolution.votes)
        return Problem(
            self.path,
            self.line,
            None,
            f'"{self.key}" of span {trace_id}/{span_id} is not resolved by '
            f"{self.resolution.rule} ({self.resolution.why}): {votes}",
            "an adjudication file (reviews.adjudication) settles it; until then orq.ai keeps "
            "what it has for this key",
            "warning",
            UNRESOLVED,
        )


UNRESOLVED = "unresolved"  # the kind of the warnings that list keys not resolved


def _shown(value: object, hide: bool) -> str:
    if hide and isinstance(value, str):
        return f"(redacted, {len(value)} chars)"
    return json.dumps(value_json(value), ensure_ascii=False)


@dataclass
class Ballot:
    """The votes of the files read so far: span -> key -> reviewer -> annotation.
    `adjudication`: the adjudication files, by the paths the user reads."""

    reviews: Reviews
    adjudication: frozenset[str] = frozenset()
    votes: dict[SpanId, dict[str, dict[str, Annotation]]] = field(default_factory=dict)

    def cast(self, span: SpanId, key: str, reviewer: str, vote: Annotation) -> Annotation | None:
        """Record a vote; the reviewer's earlier vote on the key when there is one (then
        nothing is recorded: one vote each)."""
        by = self.votes.setdefault(span, {}).setdefault(key, {})
        earlier = by.get(reviewer)
        if earlier is None:
            by[reviewer] = vote
        return earlier

    def resolve(
        self, spans: dict[SpanId, dict[str, Annotation]], metadata: Metadata
    ) -> tuple[list[Unresolved], dict[SpanId, dict[str, Review]]]:
        """Put each resolved value into `spans` (with `metadata`, where its first vote or
        the adjudication is declared); the keys that do not resolve, and how those that do
        were resolved (span -> key -> review)."""
        unresolved = []
        reviewed: dict[SpanId, dict[str, Review]] = {}
        reviews = self.reviews
        rules: dict[str, str] = {}
        sent_with = _Stripped(metadata)
        for span, keys in self.votes.items():
            for key, by in keys.items():
                rule = rules.get(key)
                if rule is None:
                    rule = rules[key] = reviews.rule_of(key)
                if rule in _ALIKE_RULES and ADJUDICATOR not in by:
                    alike = _alike(by, sent_with)
                    if alike is not None:  # the common case, decided without resolve()
                        value, where, sent = alike
                        spans.setdefault(span, {})[key] = Annotation(
                            value, sent, where.path, where.line
                        )
                        votes = tuple(sorted((who, vote.value) for who, vote in by.items()))
                        reviewed.setdefault(span, {})[key] = Review(rule, votes)  # type: ignore[arg-type]
                        continue
                adjudicated = by.get(ADJUDICATOR)
                cast = {who: vote.value for who, vote in by.items() if who != ADJUDICATOR}
                resolution = resolve(
                    cast,  # type: ignore[arg-type]
                    rule,
                    priority=reviews.priority,
                    adjudicated=adjudicated.value if adjudicated else None,  # type: ignore[arg-type]
                )
                where = adjudicated or min(by.values(), key=lambda v: (v.path, v.line))
                if resolution.value is None:
                    unresolved.append(Unresolved(span, key, resolution, where.path, where.line))
                    continue
                sent = adjudicated.metadata if adjudicated else _shared(by.values(), metadata)
                spans.setdefault(span, {})[key] = Annotation(
                    resolution.value, sent, where.path, where.line
                )
                reviewed.setdefault(span, {})[key] = Review(resolution.rule, resolution.votes)
        return unresolved, reviewed


# The rules under which votes that are all alike resolve to their value (priority needs a
# listed reviewer among them; a median is written as resolve.py canonicalizes it).
_ALIKE_RULES = frozenset((MAJORITY, UNANIMOUS, OPTION_MAJORITY))


class _Stripped:
    """A vote's metadata less its reviewerId, one shared tuple for each content (the
    metadata a value resolved from votes that say the same is sent with: _shared's)."""

    def __init__(self, defaults: Metadata) -> None:
        self.defaults = defaults
        self._of: dict[Metadata, Metadata] = {}
        self._one: dict[Metadata, Metadata] = {}

    def __call__(self, metadata: Metadata) -> Metadata:
        found = self._of.get(metadata)
        if found is None:
            kept = tuple(pair for pair in metadata if pair[0] != "reviewerId") or self.defaults
            found = self._of[metadata] = self._one.setdefault(kept, kept)
        return found


def _alike(
    by: dict[str, Annotation], sent_with: _Stripped
) -> tuple[Value, Annotation, Metadata] | None:
    """When every vote gives the same value (of one type: true is never 1) with the same
    metadata but for the reviewer: that value, the first vote in file order, and the metadata
    to send it with; else None (resolve() decides)."""
    votes = iter(by.values())
    first = next(votes)
    value, kind, sent, where = first.value, type(first.value), sent_with(first.metadata), first
    for vote in votes:
        if type(vote.value) is not kind or vote.value != value:
            return None
        if sent_with(vote.metadata) is not sent:
            return None
        if (vote.path, vote.line) < (where.path, where.line):
            where = vote
    if value == ():
        return None  # an empty multi select, which orq.ai refuses: resolve() says why
    return value, where, sent


def _shared(votes: Iterable[Annotation], defaults: Metadata) -> Metadata:
    """The metadata a value resolved from votes is sent with: what every vote's metadata
    says alike (its source, an identityId they share), no reviewerId (it is no one
    reviewer's); the project's defaults when the votes share nothing."""
    common: set[tuple[str, str]] | None = None
    for vote in votes:
        pairs = set(vote.metadata)
        common = pairs if common is None else common & pairs
    kept = {name: value for name, value in (common or set()) if name != "reviewerId"}
    return tuple(sorted(kept.items())) if kept else defaults


def warnings_of(unresolved: Iterable[Unresolved]) -> list[Problem]:
    return [item.problem() for item in unresolved]


Votes = dict[SpanId, dict[str, dict[str, Annotation]]]  # span -> key -> reviewer -> vote


def figures(votes: Votes, definitions: Definitions) -> dict[str, Agreement]:
    """How far the reviewers agree on each key they voted on (source/agreement.py), with the
    metric that fits its type; adjudications are not votes and are left out."""
    ratings: dict[str, dict[SpanId, dict[str, Hashable]]] = {}
    for span, keys in votes.items():
        for key, by in keys.items():
            cast: dict[str, Hashable] = {
                who: vote.value for who, vote in by.items() if who != ADJUDICATOR
            }
            if cast:  # an adjudication alone is no vote
                ratings.setdefault(key, {})[span] = cast
    return agreements(ratings, definitions)


Ratings = dict[str, dict[SpanId, dict[str, Hashable]]]  # key -> span -> reviewer -> value


def agreements(ratings: Ratings, definitions: Definitions) -> dict[str, Agreement]:
    """The figures of each key, by key, with the metric that fits the key's type."""
    found = {}
    for key in sorted(ratings):
        definition = definitions.get(key)
        metric = metric_for(definition.type if definition is not None else "text")
        found[key] = agreement(ratings[key], metric)
    return found


class Moved(NamedTuple):
    """One key's agreement at the base of a pull request and with its changes (None: no
    votes on the key there)."""

    key: str
    base: Agreement | None
    head: Agreement | None


@dataclass(frozen=True, slots=True)
class Movement:
    """How a pull request moves agreement (`plan --base REV`): `base` the revision compared
    with, `note` why the base gives no figures when it gives none."""

    base: str
    keys: tuple[Moved, ...]
    note: str = ""


def movement(
    base: str, before: dict[str, Agreement], after: dict[str, Agreement], note: str = ""
) -> Movement:
    keys = sorted(before.keys() | after.keys())
    return Movement(base, tuple(Moved(k, before.get(k), after.get(k)) for k in keys), note)
