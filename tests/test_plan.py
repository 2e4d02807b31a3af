"""Examples of the planner's behaviour that the properties do not pin down by name."""

from __future__ import annotations

from orqsync.planning.plan import make_plan
from orqsync.remote.apply import chains
from orqsync.source.desired import Annotation, DesiredState, Feedback
from orqsync.state.model import State


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
    plan = make_plan(desired, State(lineage=""))
    assert [len(r.items) for r in plan.requests] == [10, 1]
