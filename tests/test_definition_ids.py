"""definitions.yaml records each human review's orq.ai id where known (queues speak in ids)."""

from __future__ import annotations

from pathlib import Path

from orqsync.source.definitions import load_definitions

GOOD = """\
version: 1
definitions:
  rating: {type: single_select, options: [good, bad], id: 01JD2Q8Z5V7Y3K0M4N6P8R0T2A}
  notes: {type: text}
"""


def test_an_id_is_kept_and_one_left_out_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "definitions.yaml"
    path.write_text(GOOD, encoding="utf-8")
    definitions, problems = load_definitions(str(path), "definitions.yaml")
    assert problems == []
    assert definitions["rating"].id == "01JD2Q8Z5V7Y3K0M4N6P8R0T2A"
    assert definitions["notes"].id == ""


def test_an_id_that_is_not_a_ulid_is_refused_where_it_is(tmp_path: Path) -> None:
    path = tmp_path / "definitions.yaml"
    path.write_text(GOOD.replace("01JD2Q8Z5V7Y3K0M4N6P8R0T2A", "rating-id"), encoding="utf-8")
    _, problems = load_definitions(str(path), "definitions.yaml")
    (problem,) = problems
    assert (problem.line, problem.column) == (3, 59)  # the id's value
    assert "is not an orq.ai id (a ULID" in problem.message
    assert problem.hint == "copy the id from orq.ai, or leave the field out"
