"""A plan that leaves out files proved in sync is exactly the plan a full read gives.

Random sequences of edits (files written, rewritten, moved spans, spans shared between files,
files deleted, duplicates), applies (complete, or stopped part way), and state edits (a span
forgotten, a line edited by hand, the state restored from an older copy) run on a project on
disk. After every step a full read and two incremental plans must agree: one with the cache
of earlier plans, and one as in a fresh clone (no cache: only the record the last complete
apply left in the state). They give the same changes and requests in the same order, or the
same problems.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orqsync.commands import apply as apply_command
from orqsync.commands import plan as plan_command
from orqsync.commands.init import DEFINITIONS
from orqsync.errors import ProblemsError, StateError
from orqsync.planning.cache import cache_path
from orqsync.planning.plan import Request
from orqsync.source.project import load_project
from orqsync.state.files import StateFile

PROJECT = """\
version: 1
workspace: test
id_format: any
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
    st.tuples(st.just("edit state"), st.sampled_from(("good", "bad", "true"))),
    st.tuples(st.just("save state")),
    st.tuples(st.just("restore state")),
)


def outcome(root: Path, incremental: bool, listed: bool = True) -> tuple[object, ...]:
    """The plan's changes, requests and base, or its problems; with reviews, the keys not
    resolved: listed (`listed`: the full read and the plan cache list each one), or counted
    (a fresh clone's record counts those of the files it leaves out)."""
    try:
        planned = plan_command.plan(load_project(str(root)), incremental=incremental)
    except ProblemsError as error:
        return ("problems", [problem.render() for problem in error.problems])
    the_plan = planned.plan
    unresolved = len(the_plan.unresolved) + the_plan.unresolved_left_out
    if listed:
        assert not the_plan.unresolved_left_out
        unresolved = the_plan.unresolved  # type: ignore[assignment]
    return ("plan", the_plan.changes, the_plan.requests, planned.base, unresolved)


def fresh_clone_outcome(root: Path, listed: bool = True) -> tuple[object, ...]:
    """The incremental plan without the plan cache (as in a fresh clone); the cache is put
    back after, so that the next steps still test it."""
    cache = Path(cache_path(load_project(str(root))))
    kept = cache.read_bytes() if cache.exists() else None
    cache.unlink(missing_ok=True)
    try:
        return outcome(root, incremental=True, listed=listed)
    finally:
        cache.unlink(missing_ok=True)
        if kept is not None:
            cache.write_bytes(kept)


class AcceptingApi:
    """orq.ai that takes every request."""

    def send(self, request: Request) -> None:
        pass


def apply_part(root: Path, fraction: float) -> None:
    """An apply (the real one) that stops after the first `fraction` of its requests; a
    complete one records in the state which files it is in sync with."""
    project = load_project(str(root))
    try:
        planned = plan_command.plan(project)
    except ProblemsError:
        return
    total = len(planned.plan.requests)
    apply_command.apply(
        project,
        plan_command.as_saved(planned, project.metadata_style),
        AcceptingApi(),
        max_requests=None if fraction == 1.0 else round(total * fraction),
        environ={},
    )


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
        files = StateFile.of(project)
        state = files.load()
        if state.spans.pop(step[1], None) is not None:
            files.write(state)
    elif kind == "edit state" and state_path.exists():  # by hand: the record is not touched
        text = state_path.read_text(encoding="utf-8")
        for old in ('"value":"good"', '"value":"bad"', '"value":true', '"value":false'):
            if old in text and step[1] not in old:
                new = '"value":' + (f'"{step[1]}"' if step[1] != "true" else "true")
                state_path.write_text(text.replace(old, new, 1), encoding="utf-8")
                break
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
            full = outcome(root, incremental=False)
            assert fresh_clone_outcome(root) == full, step
            assert outcome(root, incremental=True) == full, step


REVIEWERS = {"a": "alice", "b": "bob", "c": "carol", "d": "lead"}  # d.yaml adjudicates


def as_votes(name: str, text: str) -> str:
    """A file of file_texts as one reviewer's (or, d.yaml, the adjudication's): its
    reviewerId, unless the file or a span names another."""
    if "metadata: {reviewerId" in text.split("spans:")[0]:
        return text
    who = REVIEWERS[Path(name).stem]
    return text.replace("version: 1\n", f"version: 1\nmetadata: {{reviewerId: {who}}}\n", 1)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=st.lists(st.tuples(st.sampled_from(FILES), file_texts()), min_size=1, max_size=4),
       sequence=st.lists(steps, min_size=1, max_size=14))  # fmt: skip
def test_with_reviews_the_incremental_plan_equals_the_full_plan(
    first: list, sequence: list
) -> None:
    """As above, with several reviewers' votes on the same spans: a file read again pulls in
    every file that votes on its spans, and a fresh clone leaves out whole groups of them."""
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        (root / "orqsync.yaml").write_text(
            PROJECT + "reviews: {rule: majority, adjudication: [annotations/d.yaml]}\n",
            encoding="utf-8",
        )
        (root / "definitions.yaml").write_text(DEFINITIONS, encoding="utf-8")
        (root / "annotations").mkdir()
        for name, text in first:
            (root / name).write_text(as_votes(name, text), encoding="utf-8")
        for step in sequence:
            if step[0] == "write":
                step = (*step[:2], as_votes(step[1], step[2]))
            run(root, step)
            full = outcome(root, incremental=False)
            counted = (*full[:-1], len(full[-1])) if full[0] == "plan" else full
            assert fresh_clone_outcome(root, listed=False) == counted, step
            assert outcome(root, incremental=True, listed=False) == counted, step


def four_files(root: Path) -> None:
    """A project of four files of one span each."""
    (root / "orqsync.yaml").write_text(PROJECT, encoding="utf-8")
    (root / "definitions.yaml").write_text(DEFINITIONS, encoding="utf-8")
    (root / "annotations").mkdir()
    for index, name in enumerate(FILES):
        trace_id, span_id = SPANS[index]
        (root / name).write_text(
            f"version: 1\nspans:\n  - trace_id: {trace_id}\n    span_id: {span_id}\n"
            "    annotations:\n      rating: good\n",
            encoding="utf-8",
        )


def test_an_unchanged_repository_is_planned_from_the_cache(tmp_path: Path) -> None:
    """Not vacuous: after a plan that finds a file in sync, the next plan skips reading it."""
    four_files(tmp_path)
    apply_part(tmp_path, 1.0)
    project = load_project(str(tmp_path))
    files = StateFile.of(project)
    files.write(files.load())  # a state with no in_sync record: only the cache can help
    assert plan_command.plan(project).files_read == 4  # no cache yet: every file read
    assert os.path.exists(cache_path(project))
    assert plan_command.plan(project).files_read == 0  # all four proved in sync
    (tmp_path / FILES[1]).write_text(
        (tmp_path / FILES[1]).read_text().replace("good", "bad"), encoding="utf-8"
    )
    planned = plan_command.plan(project)
    assert planned.files_read == 1
    assert [change.key for change in planned.plan.changes] == ["rating"]
    assert planned.plan.changes[0].new == "bad"


def test_a_fresh_clone_is_planned_from_the_record_of_the_last_apply(tmp_path: Path) -> None:
    """Not vacuous: with no cache, the state's in_sync record lets a plan read only the files
    changed since the apply; a span gone from a file makes it read them all."""
    four_files(tmp_path)
    project = load_project(str(tmp_path))
    apply_part(tmp_path, 1.0)
    state_path = Path(project.state_path)
    assert list(json.loads(state_path.read_text(encoding="utf-8"))["in_sync"]["files"]) == [*FILES]

    def fresh_plan() -> plan_command.Planned:
        Path(cache_path(project)).unlink(missing_ok=True)
        return plan_command.plan(project)

    assert fresh_plan().files_read == 0
    (tmp_path / FILES[1]).write_text(
        (tmp_path / FILES[1]).read_text().replace("good", "bad"), encoding="utf-8"
    )
    planned = fresh_plan()
    assert planned.files_read == 1
    assert [(change.key, change.new) for change in planned.plan.changes] == [("rating", "bad")]
    (tmp_path / FILES[2]).write_text("version: 1\nspans: []\n", encoding="utf-8")
    planned = fresh_plan()
    assert planned.files_read == 4  # the span gone is in no file read: all are read
    assert [(c.action, c.span_id) for c in planned.plan.changes] == [
        ("update", SPANS[1][1]),
        ("delete", SPANS[2][1]),
    ]
    apply_part(tmp_path, 0.5)  # one request of two: the record is left out
    assert "in_sync" not in json.loads(state_path.read_text(encoding="utf-8"))
    assert fresh_plan().files_read == 4
    apply_part(tmp_path, 1.0)
    assert fresh_plan().files_read == 0
    state_path.write_text(  # a hand edit of a line: the record no longer speaks for it
        state_path.read_text(encoding="utf-8").replace('"value":"good"', '"value":"bad"', 1),
        encoding="utf-8",
    )
    planned = fresh_plan()
    assert planned.files_read == 4
    assert [(change.key, change.new) for change in planned.plan.changes] == [("rating", "good")]


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
    plan_command.plan(project)
    assert plan_command.plan(project).files_read == 0  # the cache holds
    state_path = Path(project.state_path)
    lines = state_path.read_text(encoding="utf-8").split("\n")
    record = lines.index('"provenance": [') + 1  # the one record: every label names it
    state_path.write_text("\n".join(lines[:record] + lines[record + 1 :]), encoding="utf-8")
    for incremental in (False, True):
        with pytest.raises(StateError, match="names the provenance record"):
            plan_command.plan(project, incremental=incremental)
