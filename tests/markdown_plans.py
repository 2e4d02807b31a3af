"""Plans for the pull-request comment's tests: the golden ones, and a big one.

A helper module, not a test module: tests/test_markdown.py imports it, and so does the
subprocess that checks that rendering does not depend on the hash seed.
"""

from __future__ import annotations

from pathlib import Path

from orqsync.model import Annotation, Value
from orqsync.planning.plan import Plan, make_plan
from orqsync.review.markdown import render_plan_markdown
from orqsync.source.desired import DesiredState, Feedback
from orqsync.state.model import Applied, AppliedFeedback, Provenance, State, feedback_pairs

GOLDEN = Path(__file__).parent / "golden" / "markdown"
PROVENANCE = Provenance(commit="c0ffee", author="ann <ann@example.com>")
FLIPS = "annotations/flips.yaml"
REVIEW = "annotations/review.yaml"
BATCH = "annotations/batch-2.yaml"
TEXT_KEYS = frozenset({"correction"})
HINT = "The full plan is in the `orqsync-plan` artifact (plan.json)."


def applied(value: Value, metadata: tuple[tuple[str, str], ...] = ()) -> Applied:
    return Applied(value, metadata, PROVENANCE)


def declared(
    value: Value, path: str = REVIEW, line: int = 1, metadata: tuple[tuple[str, str], ...] = ()
) -> Annotation:
    return Annotation(value, metadata, path, line)


def feedback_state(record_id: str, trace_id: str, value: str) -> AppliedFeedback:
    body = {
        "id": record_id,
        "trace_id": trace_id,
        "product": "deployments",
        "property": "rating",
        "value": value,
    }
    return AppliedFeedback(feedback_pairs(body), PROVENANCE)


def planned(
    desired: dict[tuple[str, str], dict[str, Annotation]],
    spans: dict[tuple[str, str], dict[str, Applied]] | None = None,
    feedback: dict[str, Feedback] | None = None,
    applied_feedback: dict[str, AppliedFeedback] | None = None,
) -> tuple[Plan, State]:
    state = State("lineage-1", 3, spans=spans or {}, feedback=applied_feedback or {})
    return make_plan(DesiredState(desired, feedback or {}), state), state


# Golden plans -----------------------------------------------------------------------------


def additions_plan() -> str:
    """New labels beside one that stays; a long text value is shortened."""
    long_text = "The answer should emphasize scalability and fault tolerance, " * 3
    trace = "cb2289e8eae4e587f8bba591734cc831"
    plan, state = planned(
        {
            (trace, "274c568b4fffdfc5"): {
                "rating": declared("good", line=6),
                "defects": declared(("grammatical", "spelling"), line=7),
                "confidence_score": declared(0.95, line=8),
                "correction": declared(long_text.strip(), line=9),
                "approved": declared(True, line=10),
            },
            (trace, "9a0d1e2f3a4b5c6d"): {"rating": declared("bad", BATCH, 4)},
            (trace, "0f0f0f0f0f0f0f0f"): {"rating": declared("good", BATCH, 9)},
        },
        spans={(trace, "0f0f0f0f0f0f0f0f"): {"rating": applied("good")}},
    )
    return render_plan_markdown(plan, state, text_keys=TEXT_KEYS, max_removals=100)


def flips_plan() -> str:
    reviewer = (("reviewerId", "alice"),)
    plan, state = planned(
        {
            ("t-1", "s-1"): {
                "rating": declared("bad", FLIPS, 6),
                "defects": declared(("grammatical", "spelling"), FLIPS, 7),
            },
            ("t-1", "s-2"): {
                "rating": declared("bad", FLIPS, 11),
                "confidence_score": declared(0.75, FLIPS, 12),
            },
            ("t-2", "s-1"): {
                "rating": declared("good", REVIEW, 5, (("reviewerId", "bob"),)),
                "correction": declared("Say which plan.", REVIEW, 6, reviewer),
            },
        },
        spans={
            ("t-1", "s-1"): {
                "rating": applied("good"),
                "defects": applied(("ambiguity", "grammatical")),
                "approved": applied(True),
            },
            ("t-1", "s-2"): {"rating": applied("good"), "confidence_score": applied(0.5)},
            ("t-2", "s-1"): {
                "rating": applied("good", reviewer),
                "correction": applied("Say which plan.", reviewer),
            },
            ("t-3", "s-1"): {"rating": applied("good"), "defects": applied(("spelling",))},
        },
        feedback={"fb-1": Feedback("fb-1", "T-9", "deployments", "rating", "bad", REVIEW, 20)},
        applied_feedback={"fb-1": feedback_state("fb-1", "T-9", "good")},
    )
    return render_plan_markdown(plan, state, text_keys=TEXT_KEYS, max_removals=100)


def redacted_plan() -> str:
    plan, state = planned(
        {
            ("t-1", "s-1"): {
                "correction": declared("Customer 4411 asked about the refund.", line=3),
                "rating": declared("good", line=4),
            },
            ("t-2", "s-1"): {"correction": declared("Mention the SLA.\nAnd the fee.", line=8)},
        },
        spans={
            ("t-2", "s-1"): {"correction": applied("Mention the SLA.")},
            ("t-3", "s-1"): {"correction": applied("Private note about Jane Doe")},
        },
    )
    return render_plan_markdown(plan, state, text_keys=TEXT_KEYS, redact=True, max_removals=100)


def empty_plan() -> str:
    state = State("lineage-1", 4, spans={("t-1", "s-1"): {"rating": applied("good")}})
    plan = make_plan(DesiredState({("t-1", "s-1"): {"rating": declared("good")}}, {}), state)
    return render_plan_markdown(plan, state, max_removals=100)


def budget_exceeded_plan() -> str:
    """Twelve removals over a budget of ten, two flips and an addition, in a small comment."""
    spans = {(f"trace-{n:02}", "span-1"): {"rating": applied("good")} for n in range(14)}
    plan, state = planned(
        {
            ("trace-12", "span-1"): {"rating": declared("bad", FLIPS, 3)},
            ("trace-13", "span-1"): {"rating": declared("bad", FLIPS, 7)},
            ("trace-new", "span-1"): {"rating": declared("bad", REVIEW, 3)},
        },
        spans,
    )
    return render_plan_markdown(plan, state, max_removals=10, limit=1_500, full_plan_hint=HINT)


GOLDENS = {
    "additions": additions_plan,
    "flips": flips_plan,
    "redacted": redacted_plan,
    "empty": empty_plan,
    "budget_exceeded": budget_exceeded_plan,
}


def ten_thousand_changes() -> tuple[Plan, State]:
    """40 flips good -> bad, 2,000 defects removed, 7,960 spans labelled for the first time."""
    spans = {}
    desired = {}
    for n in range(5_000):
        span = (f"trace-{n:05}", "span-1")
        spans[span] = {"rating": applied("good"), "defects": applied(("spelling",))}
        path = f"annotations/batch-{n // 1000}.yaml"
        keys = {"rating": declared("bad" if n < 40 else "good", path, 3 * n + 1)}
        if not 40 <= n < 2_040:
            keys["defects"] = declared(("spelling",), path, 3 * n + 2)
        desired[span] = keys
    for n in range(7_960):
        desired[(f"new-{n:05}", "span-1")] = {
            "approved": declared(n % 4 != 0, "annotations/new.yaml", n + 1)
        }
    return planned(desired, spans)
