"""Properties of the planner (STYLE.md habit 9): plans converge, are minimal, and are safe."""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
from collections import Counter
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import (
    FEEDBACK_IDS,
    PROVENANCES,
    SPANS,
    Scenario,
    explanations,
    feedback_body,
    metadatas,
    owned_pool,
    provenances,
    scenarios,
    values,
    values_for,
)

from orqsync.errors import ApiError
from orqsync.model import Annotation, Correction, Metadata, parent_id, same_value
from orqsync.planning.plan import (
    ANNOTATE,
    CREATE,
    DELETE,
    FEEDBACK_PUT,
    FEEDBACK_REMOVE,
    REMOVE,
    UPDATE,
    Plan,
    Request,
    make_plan,
)
from orqsync.remote.apply import apply_plan, chains, fold_success, journal_entry
from orqsync.review import render
from orqsync.source.desired import DesiredState, Feedback, owned
from orqsync.state.codec import parse_state, render_state
from orqsync.state.files import StateFile
from orqsync.state.model import Applied, State, sorted_spans

SpanId = tuple[str, str]
Typed = tuple[str, object]
Snapshot = dict[SpanId, dict[str, tuple[Typed, Metadata]]]

FAST = settings(max_examples=80, deadline=None)
SLOW = settings(max_examples=30, deadline=None)
BATCH_LIMIT = 10  # the API takes at most ten annotations a request (docs/design.md, section 3)


def typed(value: object) -> Typed:
    """A value with its type, so that True never equals 1 and 1 never equals 1.0 (also as
    what a correction corrects to)."""
    if isinstance(value, Correction):
        return ("Correction", (typed(value.value), value.explanation))
    return (type(value).__name__, value)


class ApiModel:
    """orq.ai as the planner sees it: what each span holds, and the Feedback records.

    POST replaces each key it names (all with the request's metadata); DELETE removes keys,
    an absent key is a no-op. Feedback records are upserted and removed by id.
    """

    def __init__(self, spans: Snapshot, feedback: dict[str, dict[str, object]]) -> None:
        self.spans = {span: dict(keys) for span, keys in spans.items()}
        self.feedback = dict(feedback)

    def send(self, request: Request) -> None:
        span = self.spans.setdefault((request.trace_id, request.span_id), {})
        if request.kind == ANNOTATE:
            for key, value in request.items:
                span[key] = (typed(value), request.metadata)
        elif request.kind == REMOVE:
            for key in request.keys:
                span.pop(key, None)
        elif request.kind == FEEDBACK_PUT:
            body = {k: list(v) if isinstance(v, tuple) else v for k, v in request.feedback}
            self.feedback[str(body["id"])] = body
        else:
            assert request.kind == FEEDBACK_REMOVE
            self.feedback.pop(str(dict(request.feedback)["id"]), None)
        if not span:
            del self.spans[(request.trace_id, request.span_id)]


class FakeApi:
    """The model behind the applier's Api protocol; refuses every request of some chains."""

    def __init__(self, model: ApiModel, refused: set[tuple[str, ...]]) -> None:
        self.model = model
        self.refused = refused
        self.sent: list[Request] = []
        self._lock = threading.Lock()

    def send(self, request: Request) -> None:
        if request.chain in self.refused:
            raise ApiError("refused by the fake api", method="POST", status=400)
        with self._lock:
            self.sent.append(request)
            self.model.send(request)


def snapshot_state(state: State) -> Snapshot:
    return {
        span: {key: (typed(a.value), a.metadata) for key, a in keys.items()}
        for span, keys in state.spans.items()
        if keys
    }


def snapshot_desired(desired: DesiredState) -> Snapshot:
    return {
        span: {key: (typed(a.value), a.metadata) for key, a in keys.items()}
        for span, keys in desired.spans.items()
        if keys
    }


def foreign_keys(scenario: Scenario, data: st.DataObject) -> Snapshot:
    """Labels people added by hand in orq.ai: on the API, never in the state."""
    foreign: Snapshot = {}
    for span in data.draw(st.sets(st.sampled_from(SPANS), max_size=3), label="foreign spans"):
        known = scenario.state.spans.get(span, {})
        keys = data.draw(st.sets(st.sampled_from(owned_pool(("*",))), max_size=3), label="keys")
        foreign[span] = {
            key: (typed(data.draw(values_for(key))), data.draw(metadatas))
            for key in keys
            if key not in known
        }
    return {span: keys for span, keys in foreign.items() if keys}


def initial_model(scenario: Scenario, foreign: Snapshot) -> ApiModel:
    spans = snapshot_state(scenario.state)
    for span, keys in foreign.items():
        spans.setdefault(span, {}).update(keys)
    feedback = {
        record_id: {k: list(v) if isinstance(v, tuple) else v for k, v in applied.body}
        for record_id, applied in scenario.state.feedback.items()
    }
    return ApiModel(spans, feedback)


def expected_spans(scenario: Scenario, before: Snapshot) -> Snapshot:
    """What the API should hold after the plan: owned state keys no longer desired are gone,
    desired keys are set, everything else (unowned, hand-made) is untouched."""
    result: Snapshot = {}
    desired = snapshot_desired(scenario.desired)
    for span in set(before) | set(desired):
        keys = dict(before.get(span, {}))
        for key in scenario.state.spans.get(span, {}):
            if owned(key, scenario.owned_keys) and key not in desired.get(span, {}):
                keys.pop(key, None)
        keys.update(desired.get(span, {}))
        if keys:
            result[span] = keys
    return result


def expected_state_spans(scenario: Scenario) -> Snapshot:
    """The state after the plan: what it wrote, and the unowned keys it kept."""
    return expected_spans(scenario, snapshot_state(scenario.state))


def desired_feedback(desired: DesiredState) -> dict[str, dict[str, object]]:
    return {record_id: record.body() for record_id, record in desired.feedback.items()}


@FAST
@given(scenario=scenarios())
def test_a_success_folds_from_its_request_as_from_its_journal_entry(scenario: Scenario) -> None:
    """apply folds a success from the request at hand; recovery folds the journal entry read
    back. Both give the same state."""
    plan = make_plan(scenario.desired, scenario.state, scenario.owned_keys)
    direct, journalled = copy_state(scenario.state), copy_state(scenario.state)
    for request in plan.requests:
        entry = journal_entry(request, PROVENANCES[1])
        fold_success(direct, entry, request, PROVENANCES[1])
        journalled.fold(json.loads(json.dumps(entry)))
    assert direct == journalled
    assert render_state(direct) == render_state(journalled)


def fold_plan(state: State, plan: Plan, through_json: bool = True) -> None:
    """Fold every request's journal entry into `state`, as a successful apply does."""
    for request in plan.requests:
        entry = journal_entry(request, PROVENANCES[1])
        state.fold(json.loads(json.dumps(entry)) if through_json else entry)


def copy_state(state: State) -> State:
    return State(
        lineage=state.lineage,
        serial=state.serial,
        spans={span: dict(keys) for span, keys in state.spans.items()},
        feedback=dict(state.feedback),
    )


def span_requests(plan: Plan) -> dict[SpanId, list[Request]]:
    grouped: dict[SpanId, list[Request]] = {}
    for request in plan.requests:
        if request.kind in (ANNOTATE, REMOVE):
            grouped.setdefault((request.trace_id, request.span_id), []).append(request)
    return grouped


@FAST
@given(scenario=scenarios(), data=st.data())
def test_plan_applied_to_a_model_of_the_api_then_replanned_is_empty(
    scenario: Scenario, data: st.DataObject
) -> None:
    foreign = foreign_keys(scenario, data)
    model = initial_model(scenario, foreign)
    before = {span: dict(keys) for span, keys in model.spans.items()}
    plan = make_plan(scenario.desired, scenario.state, scenario.owned_keys)

    state = copy_state(scenario.state)
    for request in plan.requests:
        model.send(request)
    fold_plan(state, plan)

    assert model.spans == expected_spans(scenario, before)
    assert model.feedback == desired_feedback(scenario.desired)
    assert snapshot_state(state) == expected_state_spans(scenario)
    again = make_plan(scenario.desired, state, scenario.owned_keys)
    assert again.requests == ()
    assert again.changes == ()


@SLOW
@given(scenario=scenarios(), data=st.data())
def test_apply_plan_against_a_fake_api_converges_and_leaves_refused_spans_untouched(
    scenario: Scenario, data: st.DataObject
) -> None:
    chain_ids = [
        *(("span", *span) for span in SPANS),
        *(("feedback", record_id) for record_id in FEEDBACK_IDS),
    ]
    refused = data.draw(st.sets(st.sampled_from(chain_ids), max_size=3), label="refused")
    model = initial_model(scenario, {})
    api = FakeApi(model, refused)
    with tempfile.TemporaryDirectory() as root:
        state_file = StateFile(os.path.join(root, ".orqsync", "state.json"))
        state_file.write(copy_state(scenario.state))
        state = state_file.load()
        before = snapshot_state(state)
        before_spans = {span: dict(keys) for span, keys in state.spans.items()}
        before_feedback = dict(state.feedback)
        plan = make_plan(scenario.desired, state, scenario.owned_keys)

        report = apply_plan(plan, api, state_file, state, PROVENANCES[0], parallelism=4)

        assert not state_file.has_journal()
        reloaded = state_file.load()
    attempted = [chain[0] for chain in chains(plan.requests) if chain[0].chain in refused]
    expected_sent = [r for r in plan.requests if r.chain not in refused]
    assert report.total == len(plan.requests)
    assert report.done == len(expected_sent)
    assert Counter(failure.request for failure in report.failures) == Counter(attempted)
    assert all(failure.status == 400 for failure in report.failures)
    assert report.left == len(plan.requests) - len(expected_sent) - len(attempted)
    assert Counter(api.sent) == Counter(expected_sent)

    done = expected_state_spans(scenario)
    on_api = expected_spans(scenario, before)
    now = snapshot_state(reloaded)
    for span in SPANS:
        if ("span", *span) in refused:
            assert now.get(span) == before.get(span), span
            assert reloaded.spans.get(span) == before_spans.get(span), span  # provenance too
            assert model.spans.get(span) == before.get(span), span
        else:
            assert now.get(span) == done.get(span), span
            assert model.spans.get(span) == on_api.get(span), span
    for record_id in FEEDBACK_IDS:
        if ("feedback", record_id) in refused:
            assert reloaded.feedback.get(record_id) == before_feedback.get(record_id)
        elif record_id in scenario.desired.feedback:
            assert reloaded.feedback[record_id].body == feedback_body(
                scenario.desired.feedback[record_id]
            )
        else:
            assert record_id not in reloaded.feedback

    again = make_plan(scenario.desired, reloaded, scenario.owned_keys)
    assert again.requests == tuple(r for r in plan.requests if r.chain in refused)


def _reordered(mapping: dict, order: list) -> dict:
    return {key: mapping[key] for key in order}


@FAST
@given(scenario=scenarios(), data=st.data())
def test_inserting_spans_and_keys_in_another_order_gives_the_same_plan(
    scenario: Scenario, data: st.DataObject
) -> None:
    desired, state = scenario.desired, scenario.state
    shuffled_desired = DesiredState(
        spans={
            span: _reordered(
                desired.spans[span], data.draw(st.permutations(list(desired.spans[span])))
            )
            for span in data.draw(st.permutations(list(desired.spans)))
        },
        feedback=_reordered(desired.feedback, data.draw(st.permutations(list(desired.feedback)))),
    )
    shuffled_state = State(
        lineage=state.lineage,
        serial=state.serial,
        spans={
            span: _reordered(state.spans[span], data.draw(st.permutations(list(state.spans[span]))))
            for span in data.draw(st.permutations(list(state.spans)))
        },
        feedback=_reordered(state.feedback, data.draw(st.permutations(list(state.feedback)))),
    )
    plan = make_plan(desired, state, scenario.owned_keys)
    other = make_plan(shuffled_desired, shuffled_state, scenario.owned_keys)
    assert other == plan
    assert repr(other) == repr(plan)  # also tells True from 1 and 1 from 1.0


@FAST
@given(scenario=scenarios())
def test_no_request_is_empty_or_over_ten_items_and_removes_come_first(scenario: Scenario) -> None:
    plan = make_plan(scenario.desired, scenario.state, scenario.owned_keys)
    for request in plan.requests:
        if request.kind == ANNOTATE:
            assert 1 <= len(request.items) <= BATCH_LIMIT
            assert request.keys == ()
            assert len({key for key, _ in request.items}) == len(request.items)
        elif request.kind == REMOVE:
            # at most ten keys and ten corrected results: the two lists of a delete
            corrected = [key for key in request.keys if parent_id(key) is not None]
            assert len(request.keys) >= 1
            assert len(corrected) <= BATCH_LIMIT
            assert len(request.keys) - len(corrected) <= BATCH_LIMIT
            assert request.items == ()
            assert len(set(request.keys)) == len(request.keys)
        else:
            assert request.kind in (FEEDBACK_PUT, FEEDBACK_REMOVE)
            assert request.feedback
    for span, requests in span_requests(plan).items():
        kinds = [request.kind for request in requests]
        assert kinds == sorted(kinds, key=lambda kind: kind != REMOVE), span
    # A span's requests are adjacent, so each chain runs them in plan order.
    seen: list[tuple[str, str]] = []
    for request in plan.requests:
        if not seen or seen[-1] != request.chain:
            assert request.chain not in seen
            seen.append(request.chain)


@FAST
@given(scenario=scenarios())
def test_request_count_is_minimal_and_nothing_unchanged_is_sent(scenario: Scenario) -> None:
    desired, state, owned_keys = scenario.desired, scenario.state, scenario.owned_keys
    plan = make_plan(desired, state, owned_keys)
    expected_count = 0
    sent_sets: dict[SpanId, list[tuple[str, Typed, Metadata]]] = {}
    sent_removes: dict[SpanId, list[str]] = {}
    for request in plan.requests:
        span = (request.trace_id, request.span_id)
        if request.kind == ANNOTATE:
            sent_sets.setdefault(span, []).extend(
                (key, typed(value), request.metadata) for key, value in request.items
            )
        elif request.kind == REMOVE:
            sent_removes.setdefault(span, []).extend(request.keys)
    for span in set(desired.spans) | set(state.spans):
        want = desired.spans.get(span, {})
        have = state.spans.get(span, {})
        removes = [key for key in have if key not in want and owned(key, owned_keys)]
        sets = {
            key: annotation
            for key, annotation in want.items()
            if key not in have or not _unchanged(have[key], annotation)
        }
        groups = Counter(annotation.metadata for annotation in sets.values())
        corrected = sum(1 for key in removes if parent_id(key) is not None)
        expected_count += max(
            math.ceil(corrected / BATCH_LIMIT), math.ceil((len(removes) - corrected) / BATCH_LIMIT)
        )
        expected_count += sum(math.ceil(n / BATCH_LIMIT) for n in groups.values())
        assert sorted(sent_removes.get(span, [])) == sorted(removes), span
        assert sorted(sent_sets.get(span, [])) == sorted(
            (key, typed(a.value), a.metadata) for key, a in sets.items()
        ), span
        for key, annotation in want.items():
            if key not in sets:  # unchanged: in no request at all
                assert key not in {k for k, _, _ in sent_sets.get(span, [])}
                assert key not in sent_removes.get(span, [])
                assert same_value(have[key].value, annotation.value)
    expected_count += sum(
        1
        for record_id in set(desired.feedback) | set(state.feedback)
        if record_id not in desired.feedback
        or record_id not in state.feedback
        or state.feedback[record_id].body != feedback_body(desired.feedback[record_id])
    )
    assert len(plan.requests) == expected_count


def _unchanged(have: Applied, want: Annotation) -> bool:
    same = typed(have.value) == typed(want.value) or _numbers(have.value, want.value)
    return same and have.metadata == want.metadata


def _numbers(a: object, b: object) -> bool:
    """Equal numbers that are not booleans: 1 and 1.0 are one value (docs/design.md, section 3)."""
    return (
        isinstance(a, (int, float))
        and isinstance(b, (int, float))
        and not isinstance(a, bool)
        and not isinstance(b, bool)
        and a == b
    )


@FAST
@given(scenario=scenarios())
def test_only_owned_keys_that_orqsync_wrote_are_ever_removed(scenario: Scenario) -> None:
    desired, state, owned_keys = scenario.desired, scenario.state, scenario.owned_keys
    plan = make_plan(desired, state, owned_keys)
    for request in plan.requests:
        if request.kind != REMOVE:
            continue
        span = (request.trace_id, request.span_id)
        for key in request.keys:
            assert owned(key, owned_keys), key
            assert key in state.spans.get(span, {}), key
            assert key not in desired.spans.get(span, {}), key
    for change in plan.changes:
        if change.action == DELETE and not change.feedback:
            assert owned(change.key, owned_keys)
    unowned = {
        (span, key)
        for span, keys in state.spans.items()
        for key in keys
        if not owned(key, owned_keys)
    }
    removed = {
        ((r.trace_id, r.span_id), key) for r in plan.requests if r.kind == REMOVE for key in r.keys
    }
    assert not unowned & removed


@FAST
@given(scenario=scenarios())
def test_a_desired_state_planned_against_the_state_it_produced_is_empty(
    scenario: Scenario,
) -> None:
    desired, owned_keys = scenario.desired, scenario.owned_keys
    state = State(lineage="fresh")
    full = make_plan(desired, state, owned_keys)
    assert all(request.kind in (ANNOTATE, FEEDBACK_PUT) for request in full.requests)
    fold_plan(state, full, through_json=False)
    assert make_plan(desired, state, owned_keys).empty
    # And after the state file round trip (JSON floats, lists for tuples, metadata dicts).
    reread = parse_state(render_state(state), "state.json")
    assert snapshot_state(reread) == snapshot_desired(desired)
    assert make_plan(desired, reread, owned_keys).empty


@FAST
@given(scenario=scenarios())
def test_a_desired_state_equal_to_the_state_gives_an_empty_plan(scenario: Scenario) -> None:
    state = scenario.state
    desired = DesiredState(
        spans={
            span: {
                key: Annotation(applied.value, applied.metadata, "annotations/a.yaml", 1)
                for key, applied in keys.items()
            }
            for span, keys in state.spans.items()
        },
        feedback={
            record_id: Feedback(
                **{k: v for k, v in applied.body},  # type: ignore[arg-type]
                path="annotations/a.yaml",
                line=1,
            )
            for record_id, applied in state.feedback.items()
        },
    )
    plan = make_plan(desired, state, ("*",))
    assert plan.requests == ()
    assert plan.changes == ()


@FAST
@given(scenario=scenarios())
def test_feedback_is_put_when_new_or_changed_removed_when_dropped_and_untouched_when_equal(
    scenario: Scenario,
) -> None:
    desired, state = scenario.desired, scenario.state
    plan = make_plan(desired, state, scenario.owned_keys)
    requests = {
        str(dict(r.feedback)["id"]): r
        for r in plan.requests
        if r.kind in (FEEDBACK_PUT, FEEDBACK_REMOVE)
    }
    assert len(requests) == sum(1 for r in plan.requests if r.chain[0] == "feedback")
    changes = [change for change in plan.changes if change.feedback]
    assert len(changes) == len(requests)
    for record_id in set(desired.feedback) | set(state.feedback):
        want = desired.feedback.get(record_id)
        have = state.feedback.get(record_id)
        request = requests.get(record_id)
        if want is None:
            assert have is not None
            body = dict(have.body)
            assert request is not None
            assert request.kind == FEEDBACK_REMOVE
            assert dict(request.feedback) == {
                "id": record_id,
                "trace_id": body["trace_id"],
                "product": body["product"],
            }
            assert request.trace_id == body["trace_id"]
        elif have is not None and have.body == feedback_body(want):
            assert request is None
        else:
            assert request is not None
            assert request.kind == FEEDBACK_PUT
            assert request.trace_id == want.trace_id
            assert request.feedback == feedback_body(want)
    actions = Counter(change.action for change in changes)
    assert actions[CREATE] == sum(1 for i in desired.feedback if i not in state.feedback)
    assert actions[DELETE] == sum(1 for i in state.feedback if i not in desired.feedback)
    assert actions[UPDATE] == sum(
        1
        for i, want in desired.feedback.items()
        if i in state.feedback and state.feedback[i].body != feedback_body(want)
    )


@FAST
@given(a=values, b=values)
def test_same_value_never_confuses_booleans_with_numbers(a: object, b: object) -> None:
    expected = typed(a) == typed(b) or _numbers(a, b)
    assert same_value(a, b) is expected
    assert same_value(b, a) is expected


@FAST
@given(a=values, b=values, x=explanations, y=explanations)
def test_same_value_compares_corrections_by_value_and_explanation(
    a: object, b: object, x: str | None, y: str | None
) -> None:
    expected = x == y and same_value(a, b)
    assert same_value(Correction(a, x), Correction(b, y)) is expected  # type: ignore[arg-type]
    assert not same_value(Correction(a, x), a)  # type: ignore[arg-type]


@FAST
@given(
    flag=st.booleans(),
    metadata=metadatas,
    provenance=provenances,
    span=st.sampled_from(SPANS),
)
def test_a_boolean_replacing_the_range_value_it_equals_in_python_is_an_update(
    flag: bool, metadata: Metadata, provenance: object, span: SpanId
) -> None:
    number = int(flag)  # 1 == True and 0 == False in Python, never in orqsync
    for old, new in ((number, flag), (flag, number), (float(number), flag)):
        state = State(lineage="l", spans={span: {"approved": Applied(old, metadata, provenance)}})  # type: ignore[arg-type]
        desired = DesiredState(
            spans={span: {"approved": Annotation(new, metadata, "annotations/a.yaml", 3)}},
            feedback={},
        )
        plan = make_plan(desired, state, ("*",))
        assert not same_value(old, new)
        assert [change.action for change in plan.changes] == [UPDATE]
        assert not plan.changes[0].metadata_only
        assert len(plan.requests) == 1
        assert plan.requests[0].kind == ANNOTATE
        assert [typed(v) for _, v in plan.requests[0].items] == [typed(new)]
    # 1 and 1.0 are one value: no request.
    state = State(lineage="l", spans={span: {"score": Applied(1.0, metadata, provenance)}})  # type: ignore[arg-type]
    desired = DesiredState(
        spans={span: {"score": Annotation(1, metadata, "annotations/a.yaml", 3)}}, feedback={}
    )
    assert make_plan(desired, state, ("*",)).empty


@FAST
@given(scenario=scenarios(), start=st.integers(0, 6), data=st.data())
def test_the_text_plans_counts_per_file_are_a_plain_count_in_any_order(
    scenario: Scenario, start: int, data: st.DataObject
) -> None:
    """The text plan counts the changes it does not list per file, and the spans they are on,
    where each span's run of changes starts. It trusts plan order only as far as it checks
    it: in plan order, and in any other, it gives what a plain count gives."""
    plan = make_plan(scenario.desired, scenario.state, scenario.owned_keys)
    actions = Counter(change.action for change in plan.changes)
    assert {action: plan.count(action) for action in (CREATE, UPDATE, DELETE)} == {
        action: actions[action] for action in (CREATE, UPDATE, DELETE)
    }
    changes = plan.changes[start:]
    shuffled = tuple(data.draw(st.permutations(changes)))
    for order in (changes, shuffled):
        counts: dict[str, dict[str, int]] = {}
        spans: dict[str, set[tuple[bool, str, str]]] = {}
        for change in order:
            actions = counts.setdefault(change.path, {})
            actions[change.action] = actions.get(change.action, 0) + 1
            spans.setdefault(change.path, set()).add(
                (change.feedback, change.trace_id, change.span_id)
            )
        expected = (counts, {path: len(found) for path, found in spans.items()})
        assert render._counts_by_file(order) == expected
    # Plan order is the order the run count expects: it never needs the set for span changes.
    in_plan_order = tuple(change for change in changes if not change.feedback)
    with mock.patch.object(render, "_counts_by_set", side_effect=AssertionError("out of order")):
        render._counts_by_file(in_plan_order)


@FAST
@given(spans=st.lists(st.tuples(st.text(max_size=3), st.text(max_size=3)), unique=True))
def test_sorted_spans_is_the_order_of_the_tuples(spans: list[tuple[str, str]]) -> None:
    assert sorted_spans(spans) == sorted(spans)
