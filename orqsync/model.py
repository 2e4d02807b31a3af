"""The types every stage shares: span ids, metadata, values, and the operations a plan sends.

They live here, below every package, so that a stage can name them without importing another
stage (source, state, planning and remote all speak of spans and values).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple

SpanId = tuple[str, str]  # (trace_id, span_id)
Metadata = tuple[tuple[str, str], ...]  # sorted (name, value) pairs; hashable and comparable
Label = str | int | float | bool | tuple[str, ...]  # canonical: a multi select is a sorted tuple


@dataclass(frozen=True, slots=True, eq=False)
class Correction:
    """The value of a correction of an evaluator's result on a span (the API's second item
    shape: `{parent_annotation_id, value, explanation}`), and why. It is held under the key
    `correction_key(parent_annotation_id)`, beside the span's annotations, so that planning,
    state, journal and history treat both alike.

    Equal as same_value says, so that a correction to true is never one to 1 (caches of
    rendered values are keyed by value)."""

    value: Label
    explanation: str | None = None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Correction) and same_value(self, other)

    def __hash__(self) -> int:
        return hash((type(self.value) is bool, self.value, self.explanation))


Value = Label | Correction

# A correction's key: the evaluator result's id behind a mark no definition key may start with
# (source/definitions.py refuses such keys), so that the two never meet in one span's keys.
CORRECTION_MARK = "@"


def correction_key(parent_annotation_id: str) -> str:
    return CORRECTION_MARK + parent_annotation_id


def parent_id(key: str) -> str | None:
    """The evaluator result a key corrects, or None for an annotation's key."""
    return key[1:] if key.startswith(CORRECTION_MARK) else None


def value_json(value: object) -> object:
    """A value as JSON data: a multi select as a list, a correction as an object (which no
    other value is) of its value and, when there is one, its explanation."""
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Correction):
        data: dict[str, object] = {"value": value_json(value.value)}
        if value.explanation is not None:
            data["explanation"] = value.explanation
        return data
    return value


def value_from_json(data: object) -> Value:
    """The inverse of value_json, for data orqsync wrote; a ValueError for data it cannot
    have written (an object without a value, a nested object)."""
    if isinstance(data, list):
        return tuple(data)
    if isinstance(data, dict):
        inner = data.get("value")
        explanation = data.get("explanation")
        if (
            "value" not in data
            or isinstance(inner, dict)
            or not (explanation is None or isinstance(explanation, str))
            or not set(data) <= {"value", "explanation"}
        ):
            raise ValueError(f"not a value orqsync writes: {data!r}")
        label = tuple(inner) if isinstance(inner, list) else inner
        return Correction(label, explanation)  # type: ignore[arg-type]
    return data  # type: ignore[return-value]


class QueueRef(NamedTuple):
    """What a request on an annotation queue is about (Operation.is_queue): the queue, by its
    name in the repository and its id in orq.ai ("" for one a create earlier in the same
    apply makes: the applier fills it in from the create's answer), the fields a create or an
    update sends, the spans an add or a removal carries, and for a rename the name the state
    knew it by. `adopting`: a request on a queue orqsync adopted (an `id:` in its file): the
    update that adopts it does not send `project_id` (it would clear the definitions the
    queue has) though the state records it; of the spans an add carries, those the queue
    held already (the add's answer lists the items it made) stay someone else's."""

    name: str
    id: str = ""
    fields: tuple[tuple[str, object], ...] = ()
    spans: tuple[SpanId, ...] = ()
    was: str = ""
    adopting: bool = False


class Annotation(NamedTuple):
    """One desired (trace, span, key) value, the metadata to send with it, and where it is.

    A named tuple: a big repository holds hundreds of thousands, and tuples build fast.
    Both YAML readers (source/desired.py, source/fastpath.py) make them.
    """

    value: Value
    metadata: Metadata
    path: str
    line: int


class Review(NamedTuple):
    """How a value was resolved from several reviewers' votes (orqsync.yaml `reviews`): the
    rule that decided (`adjudicated` for an adjudication file's value) and every reviewer's
    vote, sorted by reviewer. Plans carry it with the value; the state records it beside the
    value it decided."""

    rule: str
    votes: tuple[tuple[str, Label], ...]

    def to_json(self) -> dict[str, object]:
        return {"rule": self.rule, "votes": {who: value_json(v) for who, v in self.votes}}

    @classmethod
    def from_json(cls, data: object) -> Review:
        """The inverse of to_json; a TypeError or ValueError for anything else."""
        if not isinstance(data, dict) or not isinstance(data.get("rule"), str):
            raise TypeError("reviews")
        votes = data.get("votes")
        if not isinstance(votes, dict):
            raise TypeError("reviews")
        pairs = []
        for who, raw in sorted(votes.items()):
            value = value_from_json(raw)
            if isinstance(value, Correction):
                raise ValueError("a vote is a label, not a correction")
            pairs.append((str(who), value))
        return cls(data["rule"], tuple(pairs))


class Operation(str, enum.Enum):
    """What one API request does. The values are what saved plans and the JSON plan write."""

    ANNOTATE = "annotate"  # set annotations on a span (create or replace, by key)
    REMOVE = "remove"  # delete annotations of a span, by key
    FEEDBACK_PUT = "feedback_put"  # the legacy Feedback API: create or replace a record
    FEEDBACK_REMOVE = "feedback_remove"  # the legacy Feedback API: remove a record
    QUEUE_CREATE = "queue_create"  # an annotation queue: create (the answer holds its id)
    QUEUE_UPDATE = "queue_update"  # change its fields (a rename is one)
    QUEUE_DELETE = "queue_delete"  # delete it, with its items
    QUEUE_ADD = "queue_add"  # add spans to it (at most 1,000 a request)
    QUEUE_REMOVE = "queue_remove"  # take spans out of it, by span id

    @property
    def is_queue(self) -> bool:
        return self.value.startswith("queue_")

    def __str__(self) -> str:
        return self.value

    @property
    def journal_op(self) -> str:
        """The `op` of this operation's line in the journal: "set" for ANNOTATE (the name
        journals have always used, kept so that a journal left by an older release folds),
        the value for the others."""
        return "set" if self is Operation.ANNOTATE else self.value


def same_value(a: object, b: object) -> bool:
    """Canonical equality that never confuses True with 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, Correction) and isinstance(b, Correction):
        return a.explanation == b.explanation and same_value(a.value, b.value)
    return a == b
