"""The user's loop, end to end in process: edit YAML, plan, apply, and what orq.ai then holds."""

from __future__ import annotations

import json

import pytest

from orqsync.emulator import Emulator, EmulatorConfig
from orqsync.review.render import NO_CHANGES

A = """\
version: 1
metadata: {reviewerId: alice}
spans:
  - trace_id: t1
    span_id: s1
    annotations:
      rating: good
      defects: [spelling, grammatical]
      confidence_score: 0.5
  - trace_id: t1
    span_id: s2
    annotations:
      rating: bad
      correction: Say it shorter.
"""


def held(project) -> dict[tuple[str, str], dict[str, object]]:
    """What the embedded emulator holds, per span."""
    emulator = Emulator(
        EmulatorConfig(api_keys=("x",), db_path=str(project.root / ".orqsync" / "emulator.db"))
    )
    try:
        found: dict[tuple[str, str], dict[str, object]] = {}
        for row in emulator.annotations():
            found.setdefault((row["trace_id"], row["span_id"]), {})[row["key"]] = row["value"]
        return found
    finally:
        emulator.close()


@pytest.fixture
def applied(make_project):
    project = make_project(**{"annotations/a.yaml": A})
    result = project.run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "Apply complete: 2 requests sent." in result.stdout
    return project


def test_first_apply_writes_every_annotation_and_a_new_plan_is_empty(applied):
    assert held(applied) == {
        ("t1", "s1"): {
            "rating": "good",
            "defects": ["grammatical", "spelling"],
            "confidence_score": 0.5,
        },
        ("t1", "s2"): {"rating": "bad", "correction": "Say it shorter."},
    }
    result = applied.run("plan", "--detailed-exitcode")
    assert result.exit_code == 0
    assert result.stdout == NO_CHANGES + "\n"


def test_editing_a_value_plans_one_change_and_apply_replaces_it(applied):
    applied.write("annotations/a.yaml", A.replace("rating: good", "rating: bad"))
    result = applied.run("plan", "--detailed-exitcode")
    assert result.exit_code == 2
    assert '      ~ rating: "good" -> "bad"' in result.stdout
    assert "Plan: 0 to add, 1 to change, 0 to remove; 1 request." in result.stdout
    assert (
        '1. POST /v2/traces/t1/spans/s1/annotation {"annotations": [{"key": "rating", '
        '"value": "bad"}], "metadata": {"reviewerId": "alice", "source": "orqsync"}}'
    ) in result.stdout
    assert applied.run("apply", "--auto-approve").exit_code == 0
    assert held(applied)[("t1", "s1")]["rating"] == "bad"
    assert applied.run("plan", "--detailed-exitcode").exit_code == 0


def test_removing_a_key_sends_a_delete_with_a_json_body(applied):
    applied.write("annotations/a.yaml", A.replace("      correction: Say it shorter.\n", ""))
    result = applied.run("plan")
    assert '      - correction = "Say it shorter."' in result.stdout
    assert '1. DELETE /v2/traces/t1/spans/s2/annotation {"keys": ["correction"]}' in result.stdout
    assert applied.run("apply", "--auto-approve").exit_code == 0
    assert held(applied)[("t1", "s2")] == {"rating": "bad"}
    assert applied.run("plan", "--detailed-exitcode").exit_code == 0


def test_removing_a_whole_span_removes_all_its_keys_in_one_request(applied):
    applied.write("annotations/a.yaml", A.split("  - trace_id: t1\n    span_id: s2")[0])
    result = applied.run("plan")
    assert "Plan: 0 to add, 0 to change, 2 to remove; 1 request." in result.stdout
    assert applied.run("apply", "--auto-approve").exit_code == 0
    assert ("t1", "s2") not in held(applied)
    state = json.loads((applied.root / ".orqsync" / "state.json").read_text())
    labelled = [span["span_id"] for span in state["spans"] if span["annotations"]]
    assert labelled == ["s1"]
    # s2 keeps only the record of what orqsync removed, which a reassertion deletes again
    (gone,) = [span for span in state["spans"] if span["span_id"] == "s2"]
    assert gone == {
        "trace_id": "t1",
        "span_id": "s2",
        "annotations": {},
        "removed": ["correction", "rating"],
    }


def test_adding_a_span_creates_only_that_span(applied):
    applied.write(
        "annotations/b.yaml",
        """\
        version: 1
        spans:
          - trace_id: t2
            span_id: s9
            annotations: {approved: true}
        """,
    )
    result = applied.run("plan")
    assert "Plan: 1 to add, 0 to change, 0 to remove; 1 request." in result.stdout
    assert applied.run("apply", "--auto-approve").exit_code == 0
    assert held(applied)[("t2", "s9")] == {"approved": True}


def test_a_metadata_change_alone_is_a_set(applied):
    applied.write("annotations/a.yaml", A.replace("reviewerId: alice", "reviewerId: bob"))
    result = applied.run("plan")
    assert (
        "      ~ rating: metadata {reviewerId: alice, source: orqsync} -> "
        "{reviewerId: bob, source: orqsync}"
    ) in result.stdout
    assert "Plan: 0 to add, 5 to change, 0 to remove; 2 requests." in result.stdout


def test_equal_values_written_differently_never_diff(applied):
    applied.write(
        "annotations/a.yaml",
        A.replace("rating: good", "rating: [good]")
        .replace("[spelling, grammatical]", "[grammatical, spelling, spelling]")
        .replace("confidence_score: 0.5", "confidence_score: 0.50"),
    )
    assert applied.run("plan", "--detailed-exitcode").exit_code == 0


def test_apply_without_a_terminal_or_auto_approve_refuses_and_sends_nothing(make_project):
    project = make_project(**{"annotations/a.yaml": A})
    result = project.run("apply", input="")
    assert result.exit_code == 1
    assert "refusing to apply without confirmation" in result.stderr
    assert not (project.root / ".orqsync" / "state.json").exists()


def test_saved_plan_applies_exactly_and_then_is_stale(make_project, tmp_path):
    project = make_project(**{"annotations/a.yaml": A})
    plan_file = str(tmp_path / "plan.json")
    assert project.run("plan", "--out", plan_file).exit_code == 0
    shown = project.run("show", plan_file)
    assert "Plan: 5 to add, 0 to change, 0 to remove; 2 requests." in shown.stdout
    assert project.run("apply", plan_file).exit_code == 0
    again = project.run("apply", plan_file)
    assert again.exit_code == 4
    assert (
        "plan.json is stale: the plan was made with no state; the state was written since "
        "(serial 1)"
    ) in again.stderr


def test_removal_budget_refuses_then_allows(make_project):
    project = make_project(**{"annotations/a.yaml": A})
    project.write(
        "orqsync.yaml",
        (project.root / "orqsync.yaml").read_text() + "policy: {max_removals: 1}\n",
    )
    assert project.run("apply", "--auto-approve").exit_code == 0
    project.write("annotations/a.yaml", "version: 1\nspans: []\n")
    refused = project.run("apply", "--auto-approve")
    assert refused.exit_code == 5
    assert "the plan removes 5 labels: 5 removals, more than policy.max_removals (1)" in (
        refused.stderr
    )
    assert len(held(project)) == 2
    assert project.run("apply", "--auto-approve", "--allow-removals").exit_code == 0
    assert held(project) == {}


def test_target_limits_the_plan_to_one_span(make_project):
    project = make_project(**{"annotations/a.yaml": A})
    result = project.run("plan", "--target", "t1/s2")
    assert "Plan: 2 to add, 0 to change, 0 to remove; 1 request." in result.stdout
    excluded = project.run("plan", "--exclude", "t1/s2")
    assert "Plan: 3 to add, 0 to change, 0 to remove; 1 request." in excluded.stdout


def test_max_requests_stops_cleanly_with_exit_3_and_the_next_run_finishes(make_project):
    project = make_project(**{"annotations/a.yaml": A})
    first = project.run("apply", "--auto-approve", "--max-requests", "1")
    assert first.exit_code == 3
    assert "Apply partial (max requests): 1 of 2 requests done" in first.stdout
    assert len(held(project)) == 1
    second = project.run("apply", "--auto-approve")
    assert second.exit_code == 0
    assert len(held(project)) == 2


def test_state_commands_show_and_forget(applied):
    listing = applied.run("state", "list")
    assert listing.stdout == "t1/s1  confidence_score, defects, rating\nt1/s2  correction, rating\n"
    shown = applied.run("state", "show", "t1/s2")
    assert 'rating = "bad"' in shown.stdout
    assert "    metadata: {reviewerId: alice, source: orqsync}" in shown.stdout
    assert applied.run("state", "rm", "t1/s2", "correction").exit_code == 0
    plan = applied.run("plan")
    assert "Plan: 1 to add, 0 to change, 0 to remove; 1 request." in plan.stdout
    missing = applied.run("state", "show", "nope/nope")
    assert missing.exit_code == 1
    assert "error: nope/nope is not in the state" in missing.stderr


def test_usage_errors_exit_1_not_2(make_project):
    project = make_project(**{"annotations/a.yaml": A})
    result = project.run("plan", "--detailed-exitcode", "--no-such-flag")
    assert result.exit_code == 1
    # click's own words, which its releases punctuate differently
    assert "error: No such option" in result.stderr
    assert "--no-such-flag" in result.stderr


def test_feedback_records_are_put_and_removed(make_project):
    feedback = """\
    version: 1
    feedback:
      - id: 01JD6Y3N0C8Q5X7F2W1T9V4B6M
        trace_id: 01JD6Y2QK3M8ZP0A1B2C3D4E5F
        product: deployments
        property: rating
        value: good
    """
    project = make_project(**{"annotations/f.yaml": feedback})
    result = project.run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "POST /v2/feedback {" in result.stdout
    emulator = Emulator(
        EmulatorConfig(api_keys=("x",), db_path=str(project.root / ".orqsync" / "emulator.db"))
    )
    assert [r["id"] for r in emulator.feedback()] == ["01JD6Y3N0C8Q5X7F2W1T9V4B6M"]
    emulator.close()
    project.write("annotations/f.yaml", "version: 1\nfeedback: []\n")
    removed = project.run("apply", "--auto-approve")
    assert "POST /v2/feedback/remove" in removed.stdout
    emulator = Emulator(
        EmulatorConfig(api_keys=("x",), db_path=str(project.root / ".orqsync" / "emulator.db"))
    )
    assert emulator.feedback() == []
    emulator.close()


def test_plan_tells_how_long_a_big_apply_takes_at_the_slowest_documented_rate(make_project):
    spans = "\n".join(
        f"  - {{trace_id: t, span_id: s{n}, annotations: {{rating: good}}}}" for n in range(1000)
    )
    project = make_project(**{"annotations/a.yaml": "version: 1\nspans:\n" + spans + "\n"})
    result = project.run("plan")
    assert "Plan: 1000 to add, 0 to change, 0 to remove; 1000 requests." in result.stdout
    assert (
        "at the lowest documented one (20 requests a minute) apply would take about 50 minutes."
    ) in result.stdout


def test_a_multi_select_change_names_the_options_that_came_and_went(applied):
    applied.write(
        "annotations/a.yaml", A.replace("[spelling, grammatical]", "[spelling, ambiguity]")
    )
    result = applied.run("plan")
    assert (
        '      ~ defects: ["grammatical", "spelling"] -> ["ambiguity", "spelling"] '
        "(+ambiguity, -grammatical)"
    ) in result.stdout


def test_max_duration_zero_stops_before_the_first_request_and_leaves_the_state_alone(make_project):
    project = make_project(**{"annotations/a.yaml": A})
    result = project.run("apply", "--auto-approve", "--max-duration", "0")
    assert result.exit_code == 3
    assert (
        "Apply partial (max duration): 0 of 2 requests done, 2 left. The state is saved; "
        "--max-duration was reached; run apply again to send the rest."
    ) in result.stdout
    assert not (project.root / ".orqsync" / "state.json").exists()
    assert not (project.root / ".orqsync" / "state.json.journal").exists()


def test_plan_shows_the_removal_budget_when_exceeded(applied):
    applied.write(
        "orqsync.yaml",
        (applied.root / "orqsync.yaml").read_text() + "policy: {max_removals: 2}\n",
    )
    applied.write("annotations/a.yaml", "version: 1\nspans: []\n")
    result = applied.run("plan")
    assert (
        "Removal budget exceeded: 5 removals, policy.max_removals is 2; apply needs "
        "--allow-removals."
    ) in result.stdout
