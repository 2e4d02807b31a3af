"""Hypothesis strategies for the planner: desired and last-applied states built directly.

The pools are small on purpose, so that spans, keys, values and metadata collide often: the
interesting plans are the ones where the desired state and the state overlap.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from orqsync.model import Annotation, Correction, Metadata, Value, correction_key, parent_id
from orqsync.source.desired import DesiredState, Feedback, owned
from orqsync.source.values import canonical_number
from orqsync.state.model import Applied, AppliedFeedback, Provenance, State

TRACES = ("trace-a", "trace-b")
SPAN_NAMES = ("span-1", "span-2", "span-3")
SPANS = tuple((trace, span) for trace in TRACES for span in SPAN_NAMES)
# More than ten keys a span, so that batches split; two families for the owned_keys patterns,
# and corrections of evaluator results (model.correction_key), which share sets and have a
# list of their own in removes.
KEYS = (
    tuple(f"label_{i:02d}" for i in range(12))
    + tuple(f"review_{i:02d}" for i in range(12))
    + tuple(correction_key(f"eval-{i:02d}") for i in range(12))
)
OWNED_KEYS = (
    ("*",),
    ("*",),
    ("review_*",),
    ("label_0*", "@*"),
    ("label_0[0-4]", "review_1*", "@eval-0*"),
)
METADATA: tuple[Metadata, ...] = (
    (),
    (("source", "orqsync"),),
    (("identityId", "user-1"), ("source", "orqsync")),
    (("reviewerId", "rev-9"),),
)
OPTIONS = ("good", "bad", "spelling", "grammar")
PATHS = ("annotations/a.yaml", "annotations/b.yaml")
FEEDBACK_IDS = ("fb-1", "fb-2", "fb-3", "fb-4")
PROVENANCES = (
    Provenance(commit="c0ffee", author="ann <ann@example.com>", applied_at="2024-05-01T10:00:00Z"),
    Provenance(commit="beef", author="bob", applied_at="2024-05-02T11:00:00Z", plan_id="p-1"),
)

texts = st.sampled_from(OPTIONS) | st.text(max_size=6)
multi_selects = st.sets(st.sampled_from(OPTIONS), min_size=1).map(lambda s: tuple(sorted(s)))
ints = st.integers(min_value=-2, max_value=3)
floats = st.sampled_from((0.5, 0.25, 2.5)) | st.floats(
    allow_nan=False, allow_infinity=False, width=32
).map(canonical_number)
# Canonical values only (orqsync.validate): str, sorted tuple of distinct str, int, float, bool.
labels: st.SearchStrategy[Value] = st.one_of(texts, multi_selects, ints, floats, st.booleans())
explanations = st.none() | st.sampled_from(("judge misread it", "")) | st.text(max_size=4)
corrections = st.builds(Correction, labels, explanations)


values = labels  # the values of annotations' keys


def values_for(key: str) -> st.SearchStrategy[Value]:
    """A correction's key takes a Correction; an annotation's key a label."""
    return corrections if parent_id(key) is not None else labels


metadatas = st.sampled_from(METADATA)
provenances = st.sampled_from(PROVENANCES)
feedback_values = st.one_of(
    texts, ints, floats, st.lists(st.sampled_from(OPTIONS), max_size=3).map(tuple)
)


def owned_pool(owned_keys: tuple[str, ...]) -> tuple[str, ...]:
    """The keys of the pool that `owned_keys` lets orqsync write."""
    return tuple(key for key in KEYS if owned(key, owned_keys))


@dataclass(frozen=True)
class Scenario:
    """A desired state, the state it is planned against, and the owned_keys policy."""

    desired: DesiredState
    state: State
    owned_keys: tuple[str, ...]


def feedback_body(record: Feedback) -> tuple[tuple[str, object], ...]:
    """The body as the state keeps it: sorted pairs, lists as tuples."""
    return tuple(
        sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in record.body().items())
    )


@st.composite
def feedback_records(draw: st.DrawFn, record_id: str) -> Feedback:
    return Feedback(
        id=record_id,
        trace_id=draw(st.sampled_from(TRACES)),
        product=draw(st.sampled_from(("deployments", "experiments"))),
        property=draw(st.sampled_from(("rating", "score"))),
        value=draw(feedback_values),
        path=draw(st.sampled_from(PATHS)),
        line=draw(st.integers(min_value=1, max_value=400)),
    )


def key_sets(pool: tuple[str, ...], min_size: int = 0) -> st.SearchStrategy[set[str]]:
    """Few keys, or many: more than ten of one span make batches split."""
    few = st.sets(st.sampled_from(pool), min_size=min_size, max_size=4)
    many = st.sets(st.sampled_from(pool), min_size=min(9, len(pool)), max_size=len(pool))
    return st.one_of(few, many)


@st.composite
def span_metadata(draw: st.DrawFn, keys: set[str]) -> dict[str, Metadata]:
    """Metadata per key: mostly one for the whole span (as a file or span declares it)."""
    shared = draw(metadatas)
    return {key: draw(metadatas) if draw(st.integers(0, 4)) == 0 else shared for key in keys}


@st.composite
def span_annotations(draw: st.DrawFn, pool: tuple[str, ...]) -> dict[str, Annotation]:
    keys = draw(key_sets(pool))
    metadata = draw(span_metadata(keys))
    return {
        key: Annotation(
            draw(values_for(key)),
            metadata[key],
            draw(st.sampled_from(PATHS)),
            draw(st.integers(1, 400)),
        )
        for key in sorted(keys)
    }


@st.composite
def span_applieds(draw: st.DrawFn) -> dict[str, Applied]:
    keys = draw(key_sets(KEYS, min_size=1))
    metadata = draw(span_metadata(keys))
    provenance = draw(provenances)
    return {key: Applied(draw(values_for(key)), metadata[key], provenance) for key in sorted(keys)}


@st.composite
def states(draw: st.DrawFn) -> State:
    """A last-applied state: any keys of the pool, owned by today's policy or not."""
    spans = draw(st.dictionaries(st.sampled_from(SPANS), span_applieds(), max_size=4))
    feedback = {}
    for record_id in draw(st.sets(st.sampled_from(FEEDBACK_IDS), max_size=3)):
        record = draw(feedback_records(record_id))
        feedback[record_id] = AppliedFeedback(feedback_body(record), draw(provenances))
    return State(
        lineage="lineage-1", serial=draw(st.integers(0, 5)), spans=spans, feedback=feedback
    )


def _record_of(applied: AppliedFeedback) -> Feedback:
    body = dict(applied.body)
    return Feedback(
        id=str(body["id"]),
        trace_id=str(body["trace_id"]),
        product=str(body["product"]),
        property=str(body["property"]),
        value=body["value"],  # type: ignore[arg-type]
        path=PATHS[0],
        line=1,
    )


@st.composite
def desired_from(draw: st.DrawFn, state: State, owned_keys: tuple[str, ...]) -> DesiredState:
    """A desired state that keeps, changes or drops what `state` holds, and adds to it.

    Desired keys are always owned: load_desired refuses any other key.
    """
    pool = owned_pool(owned_keys)
    spans: dict[tuple[str, str], dict[str, Annotation]] = {}
    for span_id, applied in sorted(state.spans.items()):
        if draw(st.integers(0, 5)) == 0:
            continue  # the whole span is dropped from the files
        keys: dict[str, Annotation] = {}
        span_drop = draw(st.booleans())  # many keys dropped at once: removes in batches
        new_metadata = draw(metadatas)  # a span's metadata changed: many sets at once
        for key, have in sorted(applied.items()):
            if not owned(key, owned_keys):
                continue
            action = draw(st.sampled_from(("keep", "keep", "value", "metadata", "drop")))
            if action == "drop" or (span_drop and action != "keep"):
                continue
            value = draw(values_for(key)) if action == "value" else have.value
            metadata = new_metadata if action == "metadata" else have.metadata
            keys[key] = Annotation(
                value, metadata, draw(st.sampled_from(PATHS)), draw(st.integers(1, 400))
            )
        spans[span_id] = keys
    extra = draw(st.dictionaries(st.sampled_from(SPANS), span_annotations(pool), max_size=4))
    for span_id, keys in extra.items():
        spans.setdefault(span_id, {}).update(keys)
    feedback: dict[str, Feedback] = {}
    for record_id, applied_feedback in sorted(state.feedback.items()):
        action = draw(st.sampled_from(("keep", "keep", "change", "drop")))
        if action == "keep":
            feedback[record_id] = _record_of(applied_feedback)
        elif action == "change":
            feedback[record_id] = draw(feedback_records(record_id))
    for record_id in draw(st.sets(st.sampled_from(FEEDBACK_IDS), max_size=2)):
        feedback.setdefault(record_id, draw(feedback_records(record_id)))
    return DesiredState(spans=spans, feedback=feedback)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    owned_keys = draw(st.sampled_from(OWNED_KEYS))
    state = draw(states())
    return Scenario(draw(desired_from(state, owned_keys)), state, owned_keys)
