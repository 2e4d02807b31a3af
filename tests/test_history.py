"""The apply history: one durable line per apply that did something, complete or not."""

from __future__ import annotations

import json
import re

import pytest

from orqsync.audit.history import (
    Counts,
    Entry,
    append_entry,
    history_path,
    load_history,
)
from orqsync.commands import apply as apply_command
from orqsync.commands import plan as plan_command
from orqsync.emulator import Emulator, EmulatorConfig, EmulatorTransport
from orqsync.errors import ApiError
from orqsync.planning.plan import Request
from orqsync.remote.client import make_client
from orqsync.source.project import load_project

A = """\
version: 1
spans:
  - trace_id: t1
    span_id: s1
    annotations: {rating: good, defects: [spelling]}
  - trace_id: t1
    span_id: s2
    annotations: {rating: bad}
"""

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def lines(project) -> list[dict]:
    path = project.root / ".orqsync" / "state.history.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_history_path_sits_beside_the_state_and_takes_its_stem():
    assert history_path("/p/.orqsync/state.json") == "/p/.orqsync/state.history.jsonl"
    assert history_path("labels/prod.state") == "labels/prod.history.jsonl"


def test_a_complete_apply_appends_one_line_with_who_what_and_how_it_ended(make_project):
    project = make_project(**{"annotations/a.yaml": A})
    planned = json.loads(project.run("plan", "--format", "json").stdout)
    result = project.run(
        "apply", "--auto-approve", "--commit", "c0ffee", "--author", "Alice <a@example.com>"
    )
    assert result.exit_code == 0, result.output
    [entry] = lines(project)
    state = json.loads((project.root / ".orqsync" / "state.json").read_text())
    assert TIME.fullmatch(entry.pop("time"))
    assert TIME.fullmatch(entry.pop("started"))
    assert entry == {
        "operation": "apply",
        "outcome": "complete",
        "stopped": "",
        "who": "Alice <a@example.com>",
        "commit": "c0ffee",
        "run_url": "",
        "plan_id": planned["plan_id"],
        "lineage": state["lineage"],
        "serial_before": 0,
        "serial_after": 1,
        "counts": {
            "create": 3,
            "update": 0,
            "delete": 0,
            "requests": 2,
            "done": 2,
            "refused": 0,
            "left": 0,
        },
    }


def test_the_history_line_is_compact_sorted_json_and_names_the_ci_run(make_project):
    project = make_project(**{"annotations/a.yaml": A})
    env = {
        "GITHUB_RUN_ID": "42",
        "GITHUB_REPOSITORY": "acme/labels",
        "GITHUB_ACTOR": "ci-bot",
        "GITHUB_SHA": "a" * 40,
    }
    assert project.run("apply", "--auto-approve", env=env).exit_code == 0
    text = (project.root / ".orqsync" / "state.history.jsonl").read_text()
    entry = json.loads(text)
    assert text == json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n"
    assert entry["run_url"] == "https://github.com/acme/labels/actions/runs/42"
    assert (entry["who"], entry["commit"]) == ("ci-bot", "a" * 40)


def test_a_partial_apply_is_recorded_and_the_run_that_finishes_it_too(make_project):
    project = make_project(**{"annotations/a.yaml": A})
    first = project.run("apply", "--auto-approve", "--max-requests", "1")
    assert first.exit_code == 3
    second = project.run("apply", "--auto-approve")
    assert second.exit_code == 0
    partial, complete = lines(project)
    assert (partial["outcome"], partial["stopped"]) == ("partial", "max requests")
    assert partial["counts"] == {
        "create": 3,
        "update": 0,
        "delete": 0,
        "requests": 2,
        "done": 1,
        "refused": 0,
        "left": 1,
    }
    assert (partial["serial_before"], partial["serial_after"]) == (0, 1)
    assert (complete["outcome"], complete["stopped"]) == ("complete", "")
    assert (complete["serial_before"], complete["serial_after"]) == (1, 2)
    assert complete["counts"]["requests"] == complete["counts"]["done"] == 1
    assert complete["lineage"] == partial["lineage"]


def test_an_apply_that_sends_nothing_leaves_no_line(make_project):
    project = make_project(**{"annotations/a.yaml": A})
    assert project.run("apply", "--auto-approve", "--max-duration", "0").exit_code == 3
    assert not (project.root / ".orqsync" / "state.history.jsonl").exists()
    assert project.run("apply", "--auto-approve").exit_code == 0
    assert project.run("apply", "--auto-approve").exit_code == 0  # no changes: nothing sent
    assert len(lines(project)) == 1


def test_a_refused_request_makes_a_partial_line_counting_it(make_project):
    project = make_project(base_url="http://orq.test", **{"annotations/a.yaml": A})
    settings = load_project(str(project.root))
    emulator = Emulator(
        EmulatorConfig(
            api_keys=("sk-secret-123",),
            definitions_path=settings.definitions_path,
            known_spans=frozenset({("t1", "s1")}),
        )
    )
    planned = plan_command.as_saved(plan_command.plan(settings), settings.metadata_style)
    with make_client(
        settings,
        {"ORQ_API_KEY": "sk-secret-123"},
        transport=EmulatorTransport(emulator, owns_emulator=True),
    ) as client:
        report = apply_command.apply(settings, planned, client, author="Alice", environ={})
    assert len(report.failures) == 1
    [entry] = lines(project)
    assert entry["outcome"] == "partial"
    assert entry["counts"]["done"] == 1
    assert entry["counts"]["refused"] == 1
    assert entry["counts"]["left"] == 0
    assert "sk-secret-123" not in (project.root / ".orqsync" / "state.history.jsonl").read_text()


class BrokenApi:
    """Sends the first request, then fails the way a bug would (not an ApiError)."""

    def __init__(self) -> None:
        self.sent = 0

    def send(self, request: Request) -> None:
        if self.sent:
            raise RuntimeError("boom")
        self.sent += 1


def test_an_apply_stopped_by_an_error_is_recorded_before_the_error_surfaces(make_project):
    project = make_project(**{"annotations/a.yaml": A})
    settings = load_project(str(project.root))
    planned = plan_command.as_saved(plan_command.plan(settings), settings.metadata_style)
    with pytest.raises(RuntimeError, match="boom"):
        apply_command.apply(settings, planned, BrokenApi(), author="Alice", environ={})
    [entry] = lines(project)
    assert (entry["outcome"], entry["stopped"]) == ("partial", "error")
    assert entry["counts"]["done"] == 1
    assert entry["counts"]["left"] == 1
    assert entry["serial_after"] == 1


class RefusingApi:
    def send(self, request: Request) -> None:
        raise ApiError("Span not found", status=404)


def test_an_apply_whose_every_request_is_refused_is_still_recorded(make_project):
    project = make_project(**{"annotations/a.yaml": A})
    settings = load_project(str(project.root))
    planned = plan_command.as_saved(plan_command.plan(settings), settings.metadata_style)
    report = apply_command.apply(settings, planned, RefusingApi(), author="Alice", environ={})
    assert report.done == 0
    [entry] = lines(project)
    assert entry["outcome"] == "partial"
    assert entry["counts"]["refused"] == 2
    assert (entry["serial_before"], entry["serial_after"]) == (0, 0)


def test_state_history_lists_newest_first_as_text_and_json(make_project):
    project = make_project(**{"annotations/a.yaml": A})
    assert project.run("apply", "--auto-approve", "--max-requests", "1").exit_code == 3
    assert project.run("apply", "--auto-approve", "--author", "Bob").exit_code == 0
    text = project.run("state", "history").stdout.splitlines()
    assert len(text) == 2
    assert " apply complete  plan " in text[0]
    # which span the first, partial run sent is up to the scheduler: 1 or 2 labels are left
    assert re.search(
        r"serial 1 -> 2  [12] to add, 0 to change, 0 to remove; 1/1 requests done  by Bob, "
        r"no commit$",
        text[0],
    )
    assert " apply partial (max requests)  plan " in text[1]
    assert "3 to add, 0 to change, 0 to remove; 1/2 requests done, 1 left" in text[1]
    last = json.loads(project.run("state", "history", "--format", "json", "-n", "1").stdout)
    assert [entry["serial_after"] for entry in last] == [2]


def test_state_history_before_any_apply_says_so(make_project):
    project = make_project(**{"annotations/a.yaml": A})
    result = project.run("state", "history")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == "No applies recorded in .orqsync/state.history.jsonl yet.\n"


def test_a_torn_last_line_stays_apart_and_is_reported_not_fatal(tmp_path):
    path = tmp_path / "state.history.jsonl"
    entry = Entry(
        time="2026-11-23T10:00:00Z",
        operation="apply",
        outcome="complete",
        who="alice",
        commit="c1",
        plan_id="p1",
        lineage="L",
        serial_before=0,
        serial_after=1,
        counts=Counts(create=1, requests=1, done=1),
    )
    append_entry(str(path), entry)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"time": "2026-11-23T10:01')  # a crash in the middle of a write
    append_entry(str(path), entry)
    found = load_history(str(path))
    assert found.entries == (entry, entry)
    assert found.unreadable == (2,)
