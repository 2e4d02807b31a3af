"""Examples of the planner's behaviour that the properties do not pin down by name."""

from __future__ import annotations

from orqsync.model import Annotation
from orqsync.planning.plan import ANNOTATE, REMOVE, make_plan
from orqsync.remote.apply import chains
from orqsync.source.desired import DesiredState, Feedback
from orqsync.state.model import Provenance, State


def test_a_span_and_a_feedback_record_with_the_same_ids_are_separate_chains():
    desired = DesiredState(
        spans={("feedback", "fb-1"): {"rating": Annotation("good", (), "a.yaml", 3)}},
        feedback={"fb-1": Feedback("fb-1", "T", "deployments", "rating", "good", "a.yaml", 9)},
    )
    plan = make_plan(desired, State(lineage=""))
    assert len(plan.requests) == 2
    assert len(chains(plan.requests)) == 2


def test_eleven_keys_of_one_span_take_two_requests_removes_first():
    keys = {f"k{n:02}": Annotation(n, (), "a.yaml", n) for n in range(11)}
    desired = DesiredState(spans={("t", "s"): keys}, feedback={})
    state = State(lineage="")
    state.set_keys(("t", "s"), [("gone", "x")], (), Provenance())
    plan = make_plan(desired, state)
    sizes = [(request.kind, len(request.items) or len(request.keys)) for request in plan.requests]
    assert sizes == [(REMOVE, 1), (ANNOTATE, 10), (ANNOTATE, 1)]
    assert plan.requests[0].keys == ("gone",)
