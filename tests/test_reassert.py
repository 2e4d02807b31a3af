"""Self-heal: `apply --reassert` sends the state's labels again, oldest spans first."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest
from conftest import Project
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import OWNED_KEYS, states

from orqsync.emulator import Emulator, EmulatorConfig
from orqsync.errors import OrqsyncError
from orqsync.model import parent_id
from orqsync.planning.plan import ANNOTATE, BATCH_LIMIT, REMOVE
from orqsync.planning.reassert import make_reassertion, oldest_first
from orqsync.source.desired import owned
from orqsync.state.codec import parse_state, render_state
from orqsync.state.model import Applied, Provenance, State

FILE = """\
version: 1
spans:
  - trace_id: t1
    span_id: s1
    annotations:
      rating: good
      defects: [spelling]
  - trace_id: t1
    span_id: s2
    annotations:
      rating: bad
"""


def emulator_of(project: Project) -> Emulator:
    """The embedded emulator's database, opened as orq.ai's UI would write to it."""
    return Emulator(
        EmulatorConfig(
            api_keys=("ui",),
            definitions_path=str(project.root / "definitions.yaml"),
            db_path=str(project.root / ".orqsync" / "emulator.db"),
        )
    )


def ui_edit(project: Project, method: str, span: str, body: dict[str, object]) -> None:
    with emulator_of(project) as emulator:
        path = f"/v2/traces/t1/spans/{span}/annotation"
        headers = {"authorization": "Bearer ui", "content-type": "application/json"}
        answer = emulator.handle(method, path, headers, json.dumps(body).encode())
        assert answer.status == 200


def held(project: Project, span: str) -> dict[str, object]:
    with emulator_of(project) as emulator:
        return emulator.span("t1", span)["annotations"]


def state_of(project: Project) -> dict:
    return json.loads((project.root / ".orqsync" / "state.json").read_text())


def test_a_label_changed_in_orq_ai_is_restored_and_keeps_who_decided_it(make_project) -> None:
    project = make_project(**{"annotations/a.yaml": FILE})
    assert project.run("apply", "--auto-approve").exit_code == 0
    provenance_before = state_of(project)["provenance"]
    ui_edit(project, "POST", "s1", {"annotations": [{"key": "rating", "value": "bad"}]})
    assert held(project, "s1")["rating"] == "bad"
    assert project.run("plan", "--detailed-exitcode").exit_code == 0  # a plan cannot see it
    result = project.run("apply", "--reassert", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert (
        "Reassertion: 2 spans, 3 labels sent again, 0 removed keys deleted again; 2 requests."
        in (result.stdout)
    )
    assert held(project, "s1") == {"rating": "good", "defects": ["spelling"]}
    state = state_of(project)
    assert state["provenance"] == provenance_before  # the labels' provenance is not the run's
    lines = [span for span in state["spans"]]
    assert all(span["asserted"] for span in lines)
    history = project.run("state", "history", "--format", "json").stdout
    assert json.loads(history)[0]["operation"] == "reassert"
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_a_key_orqsync_removed_and_someone_set_again_is_deleted_again(make_project) -> None:
    project = make_project(**{"annotations/a.yaml": FILE})
    assert project.run("apply", "--auto-approve").exit_code == 0
    project.write("annotations/a.yaml", FILE.replace("      defects: [spelling]\n", ""))
    assert project.run("apply", "--auto-approve").exit_code == 0
    line = next(s for s in state_of(project)["spans"] if s["span_id"] == "s1")
    assert line["removed"] == ["defects"]
    ui_edit(project, "POST", "s1", {"annotations": [{"key": "defects", "value": ["grammatical"]}]})
    result = project.run("apply", "--reassert", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert '{"keys": ["defects"]}' in result.stdout
    assert held(project, "s1") == {"rating": "good"}
    # declared again, the key leaves the record of removals
    project.write("annotations/a.yaml", FILE)
    assert project.run("apply", "--auto-approve").exit_code == 0
    line = next(s for s in state_of(project)["spans"] if s["span_id"] == "s1")
    assert "removed" not in line


def test_a_reassertion_waits_for_pending_changes(make_project) -> None:
    project = make_project(**{"annotations/a.yaml": FILE})
    assert project.run("apply", "--auto-approve").exit_code == 0
    project.write("annotations/a.yaml", FILE.replace("rating: bad", "rating: good"))
    result = project.run("apply", "--reassert", "--auto-approve")
    assert result.exit_code == 1
    assert "the repository has 1 change that the state does not hold" in result.stderr
    assert "apply the changes first" in result.stderr
    assert held(project, "s2")["rating"] == "bad"  # nothing was sent


@pytest.mark.parametrize(
    "args",
    [
        ("apply", "--reassert", "plan.json"),
        ("apply", "--reassert", "--target", "t1"),
        ("plan", "--reassert", "--out", "p.json"),
        ("plan", "--reassert", "--format", "markdown"),
        ("plan", "--max-requests", "3"),
    ],
)
def test_options_a_reassertion_does_not_take_are_usage_errors(make_project, args) -> None:
    project = make_project(**{"annotations/a.yaml": FILE})
    result = project.run(*args)
    assert result.exit_code == 1
    assert (
        "Usage" in result.output
        or "--reassert" in result.output
        or "--max-requests" in (result.output)
    )


def _rolling_project(tmp_path: Path, spans: int) -> Project:
    """A project whose state holds `spans` spans as an apply left them (written directly:
    the subject is the reassertion, not a first apply of 10,000 requests)."""
    project = Project(tmp_path / "p")
    from conftest import PROJECT

    from orqsync.commands.init import DEFINITIONS

    project.write("orqsync.yaml", PROJECT.format(base_url="embedded"))
    project.write("definitions.yaml", DEFINITIONS)
    lines = [
        f"  - {{trace_id: t{n // 100}, span_id: s{n}, annotations: {{rating: good}}}}"
        for n in range(spans)
    ]
    project.write(
        "annotations/a.yaml", "version: 1\nmetadata: {}\nspans:\n" + "\n".join(lines) + "\n"
    )
    provenance = Provenance(commit="c0ffee", author="ann", applied_at="2026-12-01T00:00:00Z")
    metadata = (("source", "orqsync"),)
    state = State(
        "lineage",
        1,
        {
            (f"t{n // 100}", f"s{n}"): {"rating": Applied("good", metadata, provenance)}
            for n in range(spans)
        },
    )
    project.write(".orqsync/state.json", render_state(state))
    return project


def test_a_budgeted_reassertion_of_10000_spans_over_five_runs_asserts_each_once(
    tmp_path: Path,
) -> None:
    project = _rolling_project(tmp_path, 10_000)
    assert project.run("plan", "--detailed-exitcode").exit_code == 0
    seen: Counter[tuple[str, str]] = Counter()
    for run in range(5):
        result = project.run("apply", "--reassert", "--auto-approve", "--max-requests", "2000")
        assert result.exit_code == 0, result.output
        summary = "Reassertion: 2000 spans, 2000 labels sent again, 0 removed keys deleted again"
        assert summary in result.stdout
        assert "8000 spans left for a later run" in result.stdout  # a full cycle is 5 runs
        state = parse_state((project.root / ".orqsync" / "state.json").read_text(), "state")
        times = Counter(state.asserted.values())
        assert sum(times.values()) == 2_000 * (run + 1)  # every run asserts spans not yet asserted
        newest = max(times)
        seen.update(span for span, at in state.asserted.items() if at == newest)
    history = json.loads(project.run("state", "history", "--format", "json").stdout)
    assert [(e["operation"], e["counts"]["done"]) for e in history] == [("reassert", 2000)] * 5
    with emulator_of(project) as emulator:
        assert len(emulator.annotations()) == 10_000  # every span's label, sent once
    assert len(seen) == 10_000 and set(seen.values()) == {1}  # each span in exactly one run
    # a sixth run starts again with the spans asserted longest ago
    again = make_reassertion(state, ("*",), max_requests=10)
    first_run = sorted(state.asserted.values())[0]
    assert all(state.asserted[span] == first_run for span in again.spans)


@settings(max_examples=60, deadline=None)
@given(state=states(), owned_keys=st.sampled_from(OWNED_KEYS), budget=st.none() | st.integers(1, 8))
def test_a_reassertion_sends_every_owned_label_and_removal_in_the_fewest_requests(
    state: State, owned_keys: tuple[str, ...], budget: int | None
) -> None:
    for span in list(state.spans)[:2]:  # some keys orqsync removed, owned or not
        state.removed[span] = ("label_11", "review_00")
    try:
        reassertion = make_reassertion(state, owned_keys, budget)
    except OrqsyncError:  # the oldest span alone needs more than the budget
        whole = make_reassertion(state, owned_keys)
        first = whole.spans[0]
        assert budget is not None
        assert sum(1 for r in whole.plan.requests if (r.trace_id, r.span_id) == first) > budget
        return
    requests = reassertion.plan.requests
    assert budget is None or len(requests) <= budget
    assert reassertion.plan.changes == ()
    order = oldest_first(state)
    chosen = list(reassertion.spans)
    assert chosen == [span for span in order if span in set(chosen)]  # oldest first
    for span in chosen:
        sets = {
            key: value
            for r in requests
            if (r.trace_id, r.span_id) == span and r.kind == ANNOTATE
            for key, value in r.items
        }
        removes = [
            key
            for r in requests
            if (r.trace_id, r.span_id) == span and r.kind == REMOVE
            for key in r.keys
        ]
        labels = state.spans.get(span, {})
        assert sets == {k: a.value for k, a in labels.items() if owned(k, owned_keys)}
        tombstones = state.removed.get(span, ())
        assert sorted(removes) == sorted(
            k for k in tombstones if owned(k, owned_keys) and k not in labels
        )  # a key the state holds is never deleted
        groups = Counter(a.metadata for k, a in labels.items() if owned(k, owned_keys))
        corrected = sum(1 for k in removes if parent_id(k) is not None)
        fewest = sum(math.ceil(n / BATCH_LIMIT) for n in groups.values()) + max(
            math.ceil(corrected / BATCH_LIMIT), math.ceil((len(removes) - corrected) / BATCH_LIMIT)
        )
        assert sum(1 for r in requests if (r.trace_id, r.span_id) == span) == fewest
    if budget is None:
        assert reassertion.left == 0


def test_a_budget_too_small_for_the_oldest_span_is_an_error_not_a_silent_nothing(
    make_project,
) -> None:
    keys = "".join(f"      k{i:02d}: x\n" for i in range(13))
    definitions = "version: 1\ndefinitions:\n" + "".join(
        f"  k{i:02d}: {{type: text}}\n" for i in range(13)
    )
    big = f"version: 1\nspans:\n  - trace_id: t1\n    span_id: s1\n    annotations:\n{keys}"
    project = make_project(definitions=definitions, **{"annotations/a.yaml": big})
    assert project.run("apply", "--auto-approve").exit_code == 0
    result = project.run("apply", "--reassert", "--auto-approve", "--max-requests", "1")
    assert result.exit_code == 1
    message = "span t1/s1, the next to reassert, needs 2 requests, more than --max-requests 1"
    assert message in result.stderr
    assert "raise --max-requests to 2 or more" in result.stderr


def test_an_imported_key_leaves_the_removals_and_is_never_deleted_again(
    make_project, tmp_path: Path
) -> None:
    project = make_project(**{"annotations/a.yaml": FILE})
    assert project.run("apply", "--auto-approve").exit_code == 0
    project.write("annotations/a.yaml", FILE.replace("      defects: [spelling]\n", ""))
    assert project.run("apply", "--auto-approve").exit_code == 0
    rows = tmp_path / "rows.csv"
    rows.write_text('trace_id,span_id,key,value\nt1,s1,defects,"[""spelling""]"\n')
    imported = project.run("import", str(rows))
    assert imported.exit_code == 0, imported.output
    line = next(s for s in state_of(project)["spans"] if s["span_id"] == "s1")
    assert "removed" not in line
    result = project.run("apply", "--reassert", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert '"keys"' not in result.stdout  # nothing deleted
    assert held(project, "s1") == {"rating": "good", "defects": ["spelling"]}
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_a_removed_key_whose_definition_is_gone_is_not_deleted_again_and_can_be_forgotten(
    make_project,
) -> None:
    project = make_project(**{"annotations/a.yaml": FILE})
    assert project.run("apply", "--auto-approve").exit_code == 0
    project.write("annotations/a.yaml", FILE.replace("      defects: [spelling]\n", ""))
    assert project.run("apply", "--auto-approve").exit_code == 0
    definitions = (project.root / "definitions.yaml").read_text()
    kept = [line for line in definitions.splitlines(keepends=True) if "defects" not in line]
    project.write("definitions.yaml", "".join(kept))
    shown = project.run("plan", "--reassert")
    assert shown.exit_code == 0, shown.output
    assert '"keys"' not in shown.stdout and "0 removed keys deleted again" in shown.stdout
    assert project.run("state", "rm", "t1/s1", "defects").exit_code == 0
    line = next(s for s in state_of(project)["spans"] if s["span_id"] == "s1")
    assert "removed" not in line and line["annotations"]["rating"]
