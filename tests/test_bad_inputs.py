"""A corpus of bad inputs: each is refused with every problem located, and nothing is sent.

Every directory under `tests/corpus/` is one case: the files a user would have written
(`orqsync.yaml`, `definitions.yaml`, `annotations/*.yaml`; those a case leaves out are the
standard ones of the `make_project` fixture) and `expected.txt`, the exact problem lines
`path:line:column: message (hint: ...)` that orqsync must print, in the CLI's order (file, line,
column). The same problems must come out of `validate`, of `apply --auto-approve` (which must
then have sent nothing to the embedded emulator) and, as data, of `validate --format json`.

A few inputs look suspicious but are valid; they are at the end of this module.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from conftest import Project
from corpus_cases import CASES, CORPUS, project_of

MakeProject = Callable[..., Project]


def expected_problems(case: str) -> list[str]:
    text = (CORPUS / case / "expected.txt").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line]


def summary_line(expected: list[str]) -> str:
    """The last line: it counts the errors, not the warnings printed beside them."""
    count = sum(1 for line in expected if not is_warning(line))
    return f"error: {count} problem{'s' if count != 1 else ''} found; nothing was sent"


def is_warning(line: str) -> bool:
    """A value read leniently (source/values.py), printed beside the errors it does not count as."""
    return ": warning: " in line


def stored(root: Path) -> tuple[list[tuple[str, str, str, object]], int]:
    """The annotations (trace, span, key, value) and the number of feedback records that the
    embedded emulator holds; none when it was never started."""
    database = root / ".orqsync" / "emulator.db"
    if not database.exists():
        return [], 0
    with closing(sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT trace_id, span_id, key, value FROM annotations ORDER BY trace_id, span_id, key"
        ).fetchall()
        (feedback,) = db.execute("SELECT count(*) FROM feedback").fetchone()
    return [(trace, span, key, json.loads(value)) for trace, span, key, value in rows], feedback


def render(problem: dict[str, object], label: str = "") -> str:
    """A JSON problem as the text line the CLI prints for it."""
    where = str(problem["path"])
    if problem["line"] is not None:
        where += f":{problem['line']}"
        if problem["column"] is not None:
            where += f":{problem['column']}"
    text = f"{where}: {label}{problem['message']}"
    return text + (f" (hint: {problem['hint']})" if problem["hint"] else "")


def test_the_corpus_holds_at_least_100_cases_each_with_its_expected_problems() -> None:
    assert len(CASES) >= 100
    for case in CASES:
        expected = expected_problems(case)
        assert [line for line in expected if not is_warning(line)], f"{case}: no error listed"


@pytest.mark.parametrize(
    "command", [("validate",), ("apply", "--auto-approve")], ids=["validate", "apply"]
)
@pytest.mark.parametrize("case", CASES)
def test_a_bad_input_is_refused_with_every_problem_located_and_nothing_is_sent(
    case: str, command: tuple[str, ...], make_project: MakeProject
) -> None:
    project = project_of(case, make_project)

    result = project.run(*command)

    assert "Traceback" not in result.output
    expected = expected_problems(case)
    assert result.stderr.splitlines() == [*expected, summary_line(expected)]
    assert result.stdout == ""
    assert result.exit_code == 1
    assert not (project.root / ".orqsync" / "state.json").exists()
    assert stored(project.root) == ([], 0)


@pytest.mark.parametrize("case", CASES)
def test_validate_as_json_gives_the_same_problems_as_data(
    case: str, make_project: MakeProject
) -> None:
    project = project_of(case, make_project)

    result = project.run("validate", "--format", "json")

    assert "Traceback" not in result.output
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["valid"] is False
    for problem in report["problems"] + report["warnings"]:
        assert set(problem) == {"path", "line", "column", "message", "hint"}
    expected = expected_problems(case)
    assert [render(problem) for problem in report["problems"]] == [
        line for line in expected if not is_warning(line)
    ]
    assert [render(problem, "warning: ") for problem in report["warnings"]] == [
        line for line in expected if is_warning(line)
    ]


# Inputs that look wrong but are valid: YAML 1.1 would have turned them into booleans, numbers
# or dates, and orqsync must keep them exactly as written.

EDGE_DEFINITIONS = """\
version: 1
definitions:
  rating:           {type: single_select, options: [good, bad]}
  hallucinated:     {type: single_select, options: [yes, no, unsure]}
  defects:          {type: multi_select, options: [grammatical, spelling, hallucination]}
  confidence_score: {type: range, min: 0, max: 1}
  correction:       {type: text}
"""

TRACE = "cb2289e8eae4e587f8bba591734cc831"
SPAN = "274c568b4fffdfc5"


def span_file(annotations: str, span_id: str = SPAN) -> str:
    lines = "".join(f"      {line}\n" for line in annotations.splitlines())
    return (
        "version: 1\n"
        "spans:\n"
        f"  - trace_id: {TRACE}\n"
        f"    span_id: {span_id}\n"
        "    annotations:\n" + lines
    )


ACCEPTED = {
    "an unquoted no is the option no": (span_file("hallucinated: no"), SPAN, "hallucinated", "no"),
    "an unquoted yes is the option yes": (
        span_file("hallucinated: yes"),
        SPAN,
        "hallucinated",
        "yes",
    ),
    "a span id 0123 stays the text 0123": (
        span_file("rating: good", "0123"),
        "0123",
        "rating",
        "good",
    ),
    "a date stays text": (span_file("correction: 2024-05-01"), SPAN, "correction", "2024-05-01"),
    "a timestamp stays text": (
        span_file("correction: 2024-05-01T10:30:00Z"),
        SPAN,
        "correction",
        "2024-05-01T10:30:00Z",
    ),
    "a number written as text stays text": (
        span_file("correction: 0.50"),
        SPAN,
        "correction",
        "0.50",
    ),
    "a null-looking word in quotes is text": (
        span_file("correction: 'null'"),
        SPAN,
        "correction",
        "null",
    ),
    "a UTF-8 byte order mark is ignored": (
        "\ufeff" + span_file("rating: bad"),
        SPAN,
        "rating",
        "bad",
    ),
    "a single option alone is a one-item multi select": (
        span_file("defects: spelling"),
        SPAN,
        "defects",
        ["spelling"],
    ),
}


@pytest.mark.parametrize("case", ACCEPTED)
def test_a_value_that_only_looks_wrong_is_accepted_and_sent_as_written(
    case: str, make_project: MakeProject
) -> None:
    text, span_id, key, value = ACCEPTED[case]
    project = make_project(definitions=EDGE_DEFINITIONS)
    (project.root / "annotations").mkdir()
    (project.root / "annotations" / "edge.yaml").write_text(text, encoding="utf-8")

    validated = project.run("validate")
    applied = project.run("apply", "--auto-approve")

    assert validated.exit_code == 0, validated.output
    assert applied.exit_code == 0, applied.output
    assert stored(project.root) == ([(TRACE, span_id, key, value)], 0)


EQUAL_VALUES = {
    "1 and 1.0": ("confidence_score: 1", "confidence_score: 1.0"),
    "0.5 and 5e-1": ("confidence_score: 0.5", "confidence_score: 5e-1"),
    "x and [x] for a single select": ("rating: good", "rating: [good]"),
    "a multi select in another order with a duplicate": (
        "defects: [spelling, grammatical]",
        "defects: [grammatical, spelling, grammatical]",
    ),
}


@pytest.mark.parametrize("case", EQUAL_VALUES)
def test_two_spellings_of_one_value_leave_nothing_to_change(
    case: str, make_project: MakeProject
) -> None:
    first, second = EQUAL_VALUES[case]
    project = make_project(definitions=EDGE_DEFINITIONS)
    project.write("annotations/edge.yaml", span_file(first))
    assert project.run("apply", "--auto-approve").exit_code == 0

    project.write("annotations/edge.yaml", span_file(second))
    planned = project.run("plan", "--detailed-exitcode")

    assert planned.exit_code == 0, planned.output
