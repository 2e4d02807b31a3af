"""Corrections of evaluator results: read, checked offline, planned, rendered and recorded."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from conftest import Project

from orqsync.emulator import Emulator, EmulatorConfig
from orqsync.model import Annotation, Correction, correction_key, value_from_json, value_json
from orqsync.planning.plan import ANNOTATE, REMOVE, make_plan
from orqsync.planning.wire import request_body
from orqsync.review.render import change_line
from orqsync.source.desired import DesiredState
from orqsync.state.codec import parse_state, render_state
from orqsync.state.model import Applied, Provenance, State

EVALUATORS = """\
evaluators:
  tone_judge: {output: boolean}
  relevance: {output: number}
  topic: {output: categorical, options: [billing, technical]}
  summary_check: {output: string}
"""

SPAN = """\
version: 1
spans:
  - trace_id: t1
    span_id: s1
    annotations:
      rating: good
    corrections:
{corrections}
"""


def definitions_with_evaluators() -> str:
    from orqsync.commands.init import DEFINITIONS

    return DEFINITIONS + EVALUATORS


def corrections_file(*lines: str) -> str:
    return SPAN.format(corrections="\n".join("      " + line for line in lines))


def test_corrections_are_read_beside_annotations_and_counted(make_project) -> None:
    project = make_project(
        definitions=definitions_with_evaluators(),
        **{
            "annotations/a.yaml": corrections_file(
                'EVAL-1: {value: false, evaluator: tone_judge, explanation: "Sarcasm."}',
                "EVAL-2: 0.5",
                "EVAL-3: {value: technical, evaluator: topic}",
                "EVAL-4: [a, b]",
            )
        },
    )
    result = project.run("validate")
    assert result.exit_code == 0, result.output
    assert "1 annotation and 4 corrections on 1 span" in result.stdout


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("EVAL-1: {value: maybe, evaluator: tone_judge}", "takes true or false"),
        ('EVAL-1: {value: "0.5", evaluator: relevance}', "takes a number"),
        ("EVAL-1: {value: sales, evaluator: topic}", 'Invalid value "sales"'),
        ("EVAL-1: {value: [a], evaluator: summary_check}", "takes text, got a list"),
        ("EVAL-1: {value: x, evaluator: nobody}", 'unknown evaluator "nobody"'),
        ("EVAL-1: {value: x, why: y}", "unknown field 'why'"),
        ("EVAL-1: {explanation: y}", "'value' is a required property"),
        ("EVAL-1: []", "needs at least one item"),
        ("EVAL-1: .nan", "finite number"),
        ('"EVAL 1": true', "is not an evaluator result id"),
        ("EVAL-1: {value: true, explanation: " + "x" * 3001 + "}", "longer than 3000"),
    ],
)
def test_a_bad_correction_is_located_and_explained(make_project, line: str, message: str) -> None:
    project = make_project(
        definitions=definitions_with_evaluators(),
        **{"annotations/a.yaml": corrections_file(line)},
    )
    result = project.run("validate")
    assert result.exit_code == 1, result.output
    assert "annotations/a.yaml:8:" in result.output  # the line of the correction
    assert message in result.output


def test_an_explanation_of_3000_characters_is_taken(make_project) -> None:
    project = make_project(
        **{
            "annotations/a.yaml": corrections_file(
                "EVAL-1: {value: true, explanation: " + "x" * 3000 + "}"
            )
        }
    )
    assert project.run("validate").exit_code == 0


def test_a_correction_declared_in_two_files_is_refused_with_both_places(make_project) -> None:
    project = make_project(
        **{
            "annotations/a.yaml": corrections_file("EVAL-1: true"),
            "annotations/b.yaml": corrections_file("EVAL-1: false").replace("rating: good", "{}"),
        }
    )
    result = project.run("validate")
    assert result.exit_code == 1
    assert "correction of EVAL-1 of span t1/s1 is declared twice" in result.output


def test_a_span_with_neither_annotations_nor_corrections_is_refused(make_project) -> None:
    project = make_project(
        **{"annotations/a.yaml": "version: 1\nspans:\n  - {trace_id: t1, span_id: s1}\n"}
    )
    result = project.run("validate")
    assert result.exit_code == 1
    assert "spans.0: 'annotations' or 'corrections' is required" in result.output


def test_corrections_need_ownership_like_keys(make_project) -> None:
    project = make_project(**{"annotations/a.yaml": corrections_file("EVAL-1: true")})
    text = (project.root / "orqsync.yaml").read_text()
    project.write("orqsync.yaml", text + "policy:\n  owned_keys: [rating]\n")
    result = project.run("validate")
    assert result.exit_code == 1
    assert "correction of EVAL-1: corrections are not in policy.owned_keys" in result.output
    assert 'add "@*"' in result.output
    project.write("orqsync.yaml", text + 'policy:\n  owned_keys: [rating, "@*"]\n')
    assert project.run("validate").exit_code == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('  "@odd": {type: boolean}\n', 'definition key "@odd" starts with "@"'),
        (
            "evaluators:\n  judge: {output: boolean, options: [a]}\n",
            'evaluator "judge": options are for a categorical output, not boolean',
        ),
        ("evaluators:\n  judge: {output: probability}\n", "probability"),
    ],
)
def test_definitions_refuse_what_would_confuse_corrections(
    make_project, extra: str, message: str
) -> None:
    from orqsync.commands.init import DEFINITIONS

    project = make_project(definitions=DEFINITIONS + extra)
    result = project.run("validate")
    assert result.exit_code == 1, result.output
    assert message in result.output


def _span(**keys: object) -> dict[str, Annotation]:
    return {key: Annotation(value, (), "annotations/a.yaml", 3) for key, value in keys.items()}  # type: ignore[arg-type]


def test_corrections_share_create_requests_with_annotations_in_the_api_shape() -> None:
    keys = {
        "rating": "good",
        **{correction_key(f"E{i}"): Correction(i % 2 == 0) for i in range(12)},
    }
    desired = DesiredState({("t", "s"): _span(**keys)}, {})
    plan = make_plan(desired, State.new())
    assert [len(r.items) for r in plan.requests] == [10, 3]  # 13 items, 10 a request
    bodies = [request_body(r, "documented") for r in plan.requests]
    items = [item for body in bodies for item in body["annotations"]]  # type: ignore[union-attr]
    assert {"key": "rating", "value": "good"} in items
    assert {"parent_annotation_id": "E0", "value": True} in items
    assert all(set(item) in ({"key", "value"}, {"parent_annotation_id", "value"}) for item in items)


def test_an_explanation_is_sent_and_a_changed_explanation_is_an_update() -> None:
    key = correction_key("E1")
    before = Correction(False, "first reason")
    after = Correction(False, "second reason")
    state = State("l", 1, {("t", "s"): {key: Applied(before, (), Provenance())}}, {})
    plan = make_plan(DesiredState({("t", "s"): _span(**{key: after})}, {}), state)
    assert [c.action for c in plan.changes] == ["update"]
    assert change_line(plan.changes[0]) == (
        '~ correction of E1: false, explanation "first reason" -> '
        'false, explanation "second reason"'
    )
    (request,) = plan.requests
    assert request.kind == ANNOTATE
    assert request_body(request, "current") == {
        "annotations": [
            {"parent_annotation_id": "E1", "value": False, "explanation": "second reason"}
        ]
    }


def test_removals_send_ten_keys_and_ten_corrected_results_a_request() -> None:
    applied = {f"key_{i:02d}": Applied("x", (), Provenance()) for i in range(13)}
    applied |= {
        correction_key(f"E{i:02d}"): Applied(Correction(1), (), Provenance()) for i in range(15)
    }
    state = State("l", 1, {("t", "s"): applied}, {})
    plan = make_plan(DesiredState({}, {}), state)
    assert [r.kind for r in plan.requests] == [REMOVE, REMOVE]
    bodies = [request_body(r, "documented") for r in plan.requests]
    assert [len(b.get("keys", [])) for b in bodies] == [10, 3]  # type: ignore[arg-type]
    assert [len(b["parent_annotation_ids"]) for b in bodies] == [10, 5]  # type: ignore[arg-type]
    assert bodies[1]["parent_annotation_ids"][0] == "E10"  # type: ignore[index]


def test_a_delete_of_corrections_alone_sends_no_empty_keys_list() -> None:
    key = correction_key("E1")
    state = State("l", 1, {("t", "s"): {key: Applied(Correction("x"), (), Provenance())}}, {})
    (request,) = make_plan(DesiredState({}, {}), state).requests
    assert request_body(request, "documented") == {"parent_annotation_ids": ["E1"]}


@pytest.mark.parametrize(
    "value",
    [Correction(True), Correction(1), Correction(("a", "b"), ""), Correction("t", "why\n\u2028")],
)
def test_a_correction_survives_the_state_file_and_json(value: Correction) -> None:
    key = correction_key("01JCEVAL")
    state = State("l", 2, {("t", "s"): {key: Applied(value, (), Provenance(commit="c"))}}, {})
    text = render_state(state)
    again = parse_state(text, "state.json").spans[("t", "s")][key].value
    assert again == value and type(again.value) is type(value.value)  # type: ignore[union-attr]
    assert value_from_json(json.loads(json.dumps(value_json(value)))) == value


def test_true_and_one_are_different_corrections_in_one_state() -> None:
    state = State(
        "l",
        2,
        {
            ("t", "a"): {correction_key("E"): Applied(Correction(1), (), Provenance())},
            ("t", "b"): {correction_key("E"): Applied(Correction(True), (), Provenance())},
        },
        {},
    )
    spans = parse_state(render_state(state), "state.json").spans
    assert spans[("t", "a")][correction_key("E")].value.value is not True  # type: ignore[union-attr]
    assert spans[("t", "b")][correction_key("E")].value.value is True  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "data", [{"explanation": "x"}, {"value": {"value": 1}}, {"value": 1, "why": "x"}]
)
def test_json_that_orqsync_never_writes_is_not_a_correction(data: dict) -> None:
    with pytest.raises(ValueError):
        value_from_json(data)


# Against the emulator: the shipped example (examples/judge-alignment) end to end.

EXAMPLE = Path(__file__).parent.parent / "examples" / "judge-alignment"


@pytest.fixture
def example(tmp_path: Path) -> Project:
    shutil.copytree(EXAMPLE, tmp_path / "p", ignore=shutil.ignore_patterns(".orqsync"))
    return Project(tmp_path / "p")


def held_corrections(project: Project) -> dict[tuple[str, str], dict[str, object]]:
    """What the embedded emulator holds, read from its database."""
    emulator = Emulator(
        EmulatorConfig(
            api_keys=("inspect",),
            definitions_path=str(project.root / "definitions.yaml"),
            evaluations_path=str(project.root / "evaluator-results.yaml"),
            db_path=str(project.root / ".orqsync" / "emulator.db"),
        )
    )
    with emulator:
        rows = emulator.corrections()
    found: dict[tuple[str, str], dict[str, object]] = {}
    for row in rows:
        span = (str(row["trace_id"]), str(row["span_id"]))
        found.setdefault(span, {})[str(row["parent_annotation_id"])] = (
            row["value"],
            row["explanation"],
        )
    return found


def test_the_example_applies_its_corrections_and_removes_one_by_its_parent_id(
    example: Project,
) -> None:
    applied = example.run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    held = held_corrections(example)
    span = ("4bf92f3577b34da6a3ce929d0e0e4737", "00f067aa0ba902b8")
    assert held[span] == {
        "01JD2Q8Z5V7Y3K0M4N6P8R0T2B": (0.2, "Answers a different question."),
        "01JD2Q8Z5V7Y3K0M4N6P8R0T2C": ("account", None),
    }
    assert example.run("plan", "--detailed-exitcode").exit_code == 0
    path = example.root / "annotations" / "tone-judge.yaml"
    text = path.read_text()
    path.write_text(
        text.replace(
            "      01JD2Q8Z5V7Y3K0M4N6P8R0T2C: {value: account, evaluator: topic_router}\n", ""
        )
    )
    plan = example.run("plan", "--format", "json")
    requests = json.loads(plan.stdout)["requests"]
    assert [r["body"] for r in requests] == [
        {"parent_annotation_ids": ["01JD2Q8Z5V7Y3K0M4N6P8R0T2C"]}
    ]
    assert example.run("apply", "--auto-approve").exit_code == 0
    assert held_corrections(example)[span] == {
        "01JD2Q8Z5V7Y3K0M4N6P8R0T2B": (0.2, "Answers a different question.")
    }
    assert example.run("plan", "--detailed-exitcode").exit_code == 0


def test_a_correction_of_a_result_the_server_does_not_know_is_refused_with_its_line(
    example: Project,
) -> None:
    path = example.root / "annotations" / "tone-judge.yaml"
    path.write_text(path.read_text().replace("R0T2D: false", "R0T2Z: false"))
    result = example.run("apply", "--auto-approve")
    assert result.exit_code == 3  # a partial apply
    assert "HTTP 404: The evaluation with id" in result.output
    assert "annotations/tone-judge.yaml:26: POST" in result.output  # the correction's line
    assert "Apply partial: 2 of 3 requests done, 1 refused" in result.output


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_corrections_round_trip_through_export_and_import(
    example: Project, tmp_path: Path, fmt: str
) -> None:
    assert example.run("apply", "--auto-approve").exit_code == 0
    exported = example.run("export", "--format", fmt)
    assert exported.exit_code == 0
    dataset = tmp_path / f"labels.{fmt}"
    dataset.write_text(exported.stdout)
    fresh = Project(tmp_path / "fresh")
    fresh.root.mkdir()
    for name in ("orqsync.yaml", "definitions.yaml", "evaluator-results.yaml"):
        shutil.copy(example.root / name, fresh.root / name)
    imported = fresh.run("import", str(dataset))
    assert imported.exit_code == 0, imported.output
    assert "declared 6 in annotations/imported.yaml, added 6 to the state" in imported.stdout
    assert fresh.run("plan", "--detailed-exitcode").exit_code == 0
    again = fresh.run("export", "--format", fmt).stdout
    assert _rows(again, fmt) == _rows(exported.stdout, fmt)


def _rows(text: str, fmt: str) -> list[str]:
    """The rows of an export without its manifest and provenance (import records its own)."""
    lines = text.splitlines()[1:]
    if fmt == "csv":
        header, *rest = list(csv.reader(lines))
        keep = [i for i, name in enumerate(header) if "." not in name or name.endswith(".metadata")]
        return [",".join(row[i] for i in keep) for row in rest]
    rows = [json.loads(line) for line in lines]
    return [json.dumps({k: v for k, v in row.items() if k != "provenance"}) for row in rows]


def test_a_saved_plan_with_corrections_applies_as_planned(example: Project) -> None:
    plan_file = str(example.root / "plan.json")  # not the current folder: the repository's
    saved = example.run("plan", "--out", plan_file)
    assert saved.exit_code == 0, saved.output
    shown = example.run("show", plan_file)
    assert "+ correction of 01JD2Q8Z5V7Y3K0M4N6P8R0T2D = false" in shown.stdout
    applied = example.run("apply", plan_file)
    assert applied.exit_code == 0, applied.output
    assert held_corrections(example)[("4bf92f3577b34da6a3ce929d0e0e4738", "00f067aa0ba902b9")] == {
        "01JD2Q8Z5V7Y3K0M4N6P8R0T2D": (False, None)
    }
    assert example.run("plan", "--detailed-exitcode").exit_code == 0


def test_the_pull_request_comment_counts_corrections_in_one_row_and_redacts_them(
    example: Project,
) -> None:
    comment = example.run("plan", "--format", "markdown").stdout
    assert "| *corrections of evaluator results* | 4 | 0 | 0 |" in comment
    assert "Answers a different question." in comment
    assert "`@01J" not in comment  # no correction's key in the label distribution
    redacted = example.run("plan", "--format", "markdown", "--redact").stdout
    assert "Answers a different question." not in redacted
    assert "explanation (redacted, 29 chars)" in redacted
    assert "= 0.2, explanation" in redacted  # a number is not text: shown


def test_blame_shows_a_correction_by_the_result_it_corrects(example: Project) -> None:
    assert example.run("apply", "--auto-approve").exit_code == 0
    span = "4bf92f3577b34da6a3ce929d0e0e4737/00f067aa0ba902b8"
    text = example.run("state", "blame", span, "@01JD2Q8Z5V7Y3K0M4N6P8R0T2B").stdout
    assert text.splitlines()[1].startswith(
        'correction of 01JD2Q8Z5V7Y3K0M4N6P8R0T2B = 0.2, explanation "Answers a different'
    )
    data = json.loads(
        example.run(
            "state", "blame", span, "@01JD2Q8Z5V7Y3K0M4N6P8R0T2B", "--format", "json"
        ).stdout
    )
    (version,) = data["keys"]["@01JD2Q8Z5V7Y3K0M4N6P8R0T2B"]
    assert version["value"] == {"value": 0.2, "explanation": "Answers a different question."}


def test_rows_of_trace_span_key_value_read_a_correction_cell_as_json(
    example: Project, tmp_path: Path
) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text(
        "trace_id,span_id,key,value\n"
        "4bf92f3577b34da6a3ce929d0e0e4737,00f067aa0ba902b8,@01JD2Q8Z5V7Y3K0M4N6P8R0T2B,0.2\n"
        "4bf92f3577b34da6a3ce929d0e0e4738,00f067aa0ba902b9,@01JD2Q8Z5V7Y3K0M4N6P8R0T2D,true\n"
        "4bf92f3577b34da6a3ce929d0e0e4737,00f067aa0ba902b8,@01JD2Q8Z5V7Y3K0M4N6P8R0T2C,"
        '"{""value"": ""account"", ""explanation"": ""y""}"\n'
    )
    fresh = Project(tmp_path / "fresh")
    fresh.root.mkdir()
    for name in ("orqsync.yaml", "definitions.yaml", "evaluator-results.yaml"):
        shutil.copy(example.root / name, fresh.root / name)
    imported = fresh.run("import", str(rows))
    assert imported.exit_code == 0, imported.output
    text = (fresh.root / "annotations" / "imported.yaml").read_text()
    assert '"01JD2Q8Z5V7Y3K0M4N6P8R0T2B": {value: 0.2}' in text
    assert '"01JD2Q8Z5V7Y3K0M4N6P8R0T2D": {value: true}' in text
    assert '"01JD2Q8Z5V7Y3K0M4N6P8R0T2C": {value: "account", explanation: "y"}' in text


def test_an_explanation_is_measured_as_the_api_measures_it(make_project) -> None:
    emoji = "\U0001f600" * 1600  # 1,600 characters, 3,200 UTF-16 units
    line = 'EVAL-1: {value: true, explanation: "' + emoji + '"}'
    project = make_project(**{"annotations/a.yaml": corrections_file(line)})
    result = project.run("validate")
    assert result.exit_code == 1
    assert "longer than 3000 characters (3200)" in result.output


def test_redact_hides_a_corrections_list_of_text(make_project) -> None:
    line = "EVAL-1: {value: [top secret one, top secret two], explanation: secret}"
    project = make_project(**{"annotations/a.yaml": corrections_file(line)})
    comment = project.run("plan", "--format", "markdown", "--redact").stdout
    assert "top secret" not in comment
    assert "(redacted, 2 items), explanation (redacted, 6 chars)" in comment


def test_a_reassertion_refused_in_part_says_to_run_the_reassertion_again(
    example: Project,
) -> None:
    assert example.run("apply", "--auto-approve").exit_code == 0
    results = example.root / "evaluator-results.yaml"
    kept = [line for line in results.read_text().splitlines(True) if "R0T2D" not in line]
    results.write_text("".join(kept))  # the evaluator's result is gone from orq.ai
    result = example.run("apply", "--reassert", "--auto-approve")
    assert result.exit_code == 3
    assert "HTTP 404: The evaluation with id" in result.output
    assert "fix what was refused and run apply --reassert again to finish." in result.output
