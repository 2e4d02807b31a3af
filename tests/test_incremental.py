"""A plan that leaves out files proved in sync is exactly the plan a full read gives.

Random sequences of edits (files written, rewritten, moved spans, spans shared between files,
files deleted, duplicates), applies (complete, or stopped part way), and state edits (a span
forgotten, the state restored from an older copy) run on a project on disk. After every step
the incremental plan (with the cache of earlier plans) and a full read must agree: the same
changes and requests in the same order, or the same problems.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orqsync import commands
from orqsync.apply import journal_entry
from orqsync.errors import ProblemsError, StateError
from orqsync.plancache import cache_path
from orqsync.project import load_project
from orqsync.scaffold import DEFINITIONS
from orqsync.state import Provenance

PROJECT = """\
version: 1
workspace: test
api: {base_url: embedded}
metadata: {source: orqsync}
"""
FILES = ("annotations/a.yaml", "annotations/b.yaml", "annotations/c.yaml", "annotations/d.yaml")
SPANS = tuple((f"trace-{t}", f"span-{s}") for t in "123" for s in "1234")
VALUES = {
    "rating": ("good", "bad"),
    "defects": ("[spelling]", "[grammatical, spelling]"),
    "approved": ("true", "false"),
}


@st.composite
def file_texts(draw: st.DrawFn) -> str:
    spans = draw(st.lists(st.sampled_from(SPANS), unique=True, max_size=4))
    lines = ["version: 1", "spans:" if spans else "spans: []"]
    for trace_id, span_id in spans:
        keys = draw(st.lists(st.sampled_from(sorted(VALUES)), unique=True, min_size=1))
        lines += [f"  - trace_id: {trace_id}", f"    span_id: {span_id}"]
        if draw(st.booleans()):
            lines.append("    metadata: {reviewerId: bob}")
        lines.append("    annotations:")
        lines += [f"      {key}: {draw(st.sampled_from(VALUES[key]))}" for key in keys]
    if draw(st.integers(0, 9)) == 0:
        lines.insert(1, "# the strict reader takes this file: it has a tag")
        lines.insert(1, "metadata: {reviewerId: !!str carol}")
    return "\n".join(lines) + "\n"


steps = st.one_of(
    st.tuples(st.just("write"), st.sampled_from(FILES), file_texts()),
    st.tuples(st.just("write"), st.sampled_from(FILES), file_texts()),
    st.tuples(st.just("delete"), st.sampled_from(FILES)),
    st.tuples(st.just("apply"), st.floats(0, 1)),
    st.tuples(st.just("apply"), st.just(1.0)),
    st.tuples(st.just("apply"), st.just(1.0)),
    st.tuples(st.just("apply"), st.just(1.0)),
    st.tuples(st.just("forget"), st.sampled_from(SPANS)),
    st.tuples(st.just("save state")),
    st.tuples(st.just("restore state")),
)


def outcome(root: Path, incremental: bool) -> tuple[object, ...]:
    try:
        planned = commands.plan(load_project(str(root)), incremental=incremental)
    except ProblemsError as error:
        return ("problems", [problem.render() for problem in error.problems])
    return ("plan", planned.plan.changes, planned.plan.requests, planned.base)


def apply_part(root: Path, fraction: float) -> None:
    """What an apply that succeeded for the first `fraction` of its requests leaves."""
    project = load_project(str(root))
    try:
        planned = commands.plan(project, incremental=False)
    except ProblemsError:
        return
    files = commands.state_file(project)
    state = files.load()
    done = planned.plan.requests[: round(len(planned.plan.requests) * fraction)]
    for request in done:
        state.fold(journal_entry(request, Provenance(commit="c", plan_id="p")))
    if done:
        files.write(state)


def run(root: Path, step: tuple) -> None:
    project = load_project(str(root))
    state_path = Path(project.state_path)
    kind = step[0]
    if kind == "write":
        (root / step[1]).write_text(step[2], encoding="utf-8")
    elif kind == "delete":
        if (root / step[1]).exists() and len(list((root / "annotations").iterdir())) > 1:
            (root / step[1]).unlink()
    elif kind == "apply":
        apply_part(root, step[1])
    elif kind == "forget":
        files = commands.state_file(project)
        state = files.load()
        if state.spans.pop(step[1], None) is not None:
            files.write(state)
    elif kind == "save state" and state_path.exists():
        shutil.copy(state_path, root / "saved-state.json")
    elif kind == "restore state" and (root / "saved-state.json").exists():
        shutil.copy(root / "saved-state.json", state_path)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=st.lists(st.tuples(st.sampled_from(FILES), file_texts()), min_size=1, max_size=4),
       sequence=st.lists(steps, min_size=1, max_size=14))  # fmt: skip
def test_incremental_plan_equals_full_plan_after_any_edits(first: list, sequence: list) -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        (root / "orqsync.yaml").write_text(PROJECT, encoding="utf-8")
        (root / "definitions.yaml").write_text(DEFINITIONS, encoding="utf-8")
        (root / "annotations").mkdir()
        for name, text in first:
            (root / name).write_text(text, encoding="utf-8")
        for step in sequence:
            run(root, step)
            assert outcome(root, incremental=True) == outcome(root, incremental=False), step


def test_an_unchanged_repository_is_planned_from_the_cache(tmp_path: Path) -> None:
    """Not vacuous: after a plan that finds a file in sync, the next plan skips reading it."""
    (tmp_path / "orqsync.yaml").write_text(PROJECT, encoding="utf-8")
    (tmp_path / "definitions.yaml").write_text(DEFINITIONS, encoding="utf-8")
    (tmp_path / "annotations").mkdir()
    for index, name in enumerate(FILES):
        trace_id, span_id = SPANS[index]
        (tmp_path / name).write_text(
            f"version: 1\nspans:\n  - trace_id: {trace_id}\n    span_id: {span_id}\n"
            "    annotations:\n      rating: good\n",
            encoding="utf-8",
        )
    apply_part(tmp_path, 1.0)
    project = load_project(str(tmp_path))
    assert commands.plan(project).files_read == 4  # no cache yet: every file read
    assert os.path.exists(cache_path(project))
    assert commands.plan(project).files_read == 0  # all four proved in sync
    (tmp_path / FILES[1]).write_text(
        (tmp_path / FILES[1]).read_text().replace("good", "bad"), encoding="utf-8"
    )
    planned = commands.plan(project)
    assert planned.files_read == 1
    assert [change.key for change in planned.plan.changes] == ["rating"]
    assert planned.plan.changes[0].new == "bad"


def test_a_state_that_lost_a_provenance_record_is_refused_even_from_the_cache(
    tmp_path: Path,
) -> None:
    """The lines a cached plan leaves unread still name provenance records; a state that lost
    one is damaged, and the incremental plan says so as a full read does."""
    (tmp_path / "orqsync.yaml").write_text(PROJECT, encoding="utf-8")
    (tmp_path / "definitions.yaml").write_text(DEFINITIONS, encoding="utf-8")
    (tmp_path / "annotations").mkdir()
    (tmp_path / FILES[0]).write_text(
        "version: 1\nspans:\n  - trace_id: t\n    span_id: s\n    annotations:\n"
        "      rating: good\n",
        encoding="utf-8",
    )
    apply_part(tmp_path, 1.0)
    project = load_project(str(tmp_path))
    commands.plan(project)
    assert commands.plan(project).files_read == 0  # the cache holds
    state_path = Path(project.state_path)
    lines = state_path.read_text(encoding="utf-8").split("\n")
    record = lines.index('"provenance": [') + 1  # the one record: every label names it
    state_path.write_text("\n".join(lines[:record] + lines[record + 1 :]), encoding="utf-8")
    for incremental in (False, True):
        with pytest.raises(StateError, match="names the provenance record"):
            commands.plan(project, incremental=incremental)
