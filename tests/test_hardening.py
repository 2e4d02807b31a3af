"""Misuses a new user found (issue 14): each is refused clearly, or said, and nothing is lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Project
from gitrepo import git, isolate

from orqsync.commands.init import DEFINITIONS
from orqsync.emulator import Emulator, EmulatorConfig, EmulatorServer, FaultConfig

MakeProject = Callable[..., Project]
TRACE = "cb2289e8eae4e587f8bba591734cc831"
A_FILE = f"""\
version: 1
metadata: {{reviewerId: alice}}
spans:
  - trace_id: {TRACE}
    span_id: 274c568b4fffdfc5
    annotations:
      rating: good
"""


def init_embedded(root: Path) -> Project:
    project = Project(root)
    root.mkdir(parents=True)
    assert project.run("init", "--embedded").exit_code == 0
    return project


def test_a_saved_plan_of_another_project_is_refused_saying_what_differs(tmp_path: Path) -> None:
    a, b = init_embedded(tmp_path / "a"), init_embedded(tmp_path / "b")
    example = b.root / "annotations" / "example.yaml"
    example.write_text(example.read_text().replace(TRACE, "0af7651916cd43dd8448eb211c80319c"))
    b.write("orqsync.yaml", (b.root / "orqsync.yaml").read_text().replace("my-", "their-"))
    assert b.run("plan", "--out", str(tmp_path / "B.plan")).exit_code == 0

    result = a.run("apply", str(tmp_path / "B.plan"))

    assert result.exit_code == 4
    assert result.stderr == (
        f"error: {tmp_path / 'B.plan'} was not made from this project as it is: orqsync.yaml "
        "differs (the plan is another project's, or it was edited); 1 file (annotations or "
        "queues) differs: annotations/example.yaml\n"
        "  hint: run `orqsync plan --out FILE` here and apply that plan\n"
    )
    assert not (a.root / ".orqsync" / "state.json").exists()


def test_a_saved_plan_applies_in_its_own_project(tmp_path: Path) -> None:
    a = init_embedded(tmp_path / "a")
    assert a.run("plan", "--out", str(tmp_path / "A.plan")).exit_code == 0
    result = a.run("apply", str(tmp_path / "A.plan"))
    assert result.exit_code == 0, result.output
    assert "Apply complete: 1 request sent." in result.stdout


def test_apply_checks_the_key_and_the_lock_before_it_shows_the_plan(
    make_project: MakeProject,
) -> None:
    project = make_project(base_url="https://api.orq.ai", **{"annotations/a.yaml": A_FILE})
    result = project.run("apply", "--auto-approve", env={})
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.startswith("error: the API key is not set: $ORQ_API_KEY is empty")

    project.write(".orqsync/state.json.lock", json.dumps(held_lock()))
    result = project.run("apply", "--auto-approve", env={"ORQ_API_KEY": "sk-test"})
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.startswith("error: the state is locked: bob on elsewhere")


def held_lock() -> dict[str, object]:
    return {
        "id": "5f0c",
        "operation": "apply",
        "who": "bob",
        "host": "elsewhere",
        "pid": 1,
        "created": "2026-12-01T10:00:00+00:00",
        "ci_run": "",
    }


def test_plan_says_what_it_compared_and_what_a_target_left_out(make_project: MakeProject) -> None:
    two = A_FILE + f"  - trace_id: {TRACE}\n    span_id: 0000000000000002\n"
    two += "    annotations:\n      rating: bad\n"
    project = make_project(**{"annotations/a.yaml": two})
    assert project.run("apply", "--auto-approve").exit_code == 0
    assert project.run("plan").stdout == (
        "No changes. The repository matches the state file, the record of what orqsync "
        "applied (orq.ai itself is not read).\n"
    )
    project.write("annotations/a.yaml", two.replace("rating: bad", "rating: good"))
    targeted = project.run("plan", "--target", f"{TRACE}/274c568b4fffdfc5")
    assert targeted.exit_code == 0
    assert targeted.stdout == (  # the other span's change is left out, and said to be
        "No changes. The repository matches the state file, the record of what orqsync "
        "applied (orq.ai itself is not read).\n"
        "--target/--exclude left out 1 span: not compared, not changed.\n"
    )


def test_a_target_that_matches_nothing_is_an_error(make_project: MakeProject) -> None:
    project = make_project(**{"annotations/a.yaml": A_FILE})
    result = project.run("plan", "--target", f"{TRACE}/nope")
    assert result.exit_code == 1
    assert result.stderr == (
        f'error: --target "{TRACE}/nope" matches no span and no feedback record, in the '
        "repository or in the state\n"
        "  hint: write TRACE/SPAN, TRACE (all its spans) or feedback/ID; * and ? match any "
        "characters\n"
    )


@pytest.mark.parametrize("command", [("plan",), ("show", "x.plan")])
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_redact_outside_markdown_is_refused(
    make_project: MakeProject, command: tuple[str, ...], fmt: str
) -> None:
    project = make_project(**{"annotations/a.yaml": A_FILE})
    result = project.run(*command, "--redact", "--format", fmt)
    assert result.exit_code == 1
    assert "error: --redact goes with --format markdown (the pull-request comment)" in (
        result.stderr
    )


def test_values_read_leniently_are_said_by_validate_and_plan(make_project: MakeProject) -> None:
    lenient = A_FILE.replace("rating: good", "rating: [good]\n      defects: spelling")
    project = make_project(**{"annotations/a.yaml": lenient})
    warnings = [
        'annotations/a.yaml:7:15: warning: "rating" is a single select: a list of one option '
        "is read as that option (hint: write the option without brackets)",
        'annotations/a.yaml:8:16: warning: "defects" is a multi select: one option is read as '
        "a list of it (hint: write it as a list: [spelling])",
    ]
    validated = project.run("validate")
    assert validated.exit_code == 0
    assert validated.stderr.splitlines() == warnings
    planned = project.run("plan")
    assert planned.exit_code == 0
    assert planned.stderr.splitlines() == warnings
    data = json.loads(project.run("validate", "--format", "json").stdout)
    assert (data["valid"], len(data["warnings"])) == (True, 2)


def test_one_warning_in_many_places_lists_a_few_and_counts_the_rest(
    make_project: MakeProject,
) -> None:
    spans = "".join(
        f"  - trace_id: {number:032x}\n    span_id: {number:016x}\n"
        "    annotations:\n      rating: [good]\n"
        for number in range(1, 13)
    )
    project = make_project(**{"annotations/a.yaml": "version: 1\nspans:\n" + spans})
    validated = project.run("validate")
    assert validated.exit_code == 0
    lines = validated.stderr.splitlines()
    assert [line.split(": warning: ")[0] for line in lines[:5]] == [
        f"annotations/a.yaml:{6 + 4 * n}:15" for n in range(5)
    ]
    assert lines[5:] == [
        "  ... and 7 more places with this warning "
        "(`orqsync validate --format json` lists every one)"
    ]
    data = json.loads(project.run("validate", "--format", "json").stdout)
    assert len(data["warnings"]) == 12


def test_state_rm_is_recorded_in_the_apply_history(make_project: MakeProject) -> None:
    project = make_project(**{"annotations/a.yaml": A_FILE})
    assert project.run("apply", "--auto-approve").exit_code == 0
    result = project.run("state", "rm", f"{TRACE}/274c568b4fffdfc5", "rating")
    assert result.exit_code == 0
    lines = (project.root / ".orqsync" / "state.history.jsonl").read_text().splitlines()
    last = json.loads(lines[-1])
    assert (last["operation"], last["detail"], last["counts"]["delete"]) == (
        "state rm",
        f"{TRACE}/274c568b4fffdfc5: rating",
        1,
    )
    assert last["who"]
    history = project.run("state", "history", "-n", "1").stdout
    assert "state rm complete" in history
    assert f"forgot {TRACE}/274c568b4fffdfc5: rating (1 labels), no request sent" in history


def test_labels_applied_from_uncommitted_files_are_not_credited_to_head(
    make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate(monkeypatch)
    project = make_project(**{"annotations/a.yaml": A_FILE})
    root = project.root
    (root / ".gitignore").write_text(".orqsync/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "labels")
    head = git(root, "rev-parse", "HEAD")
    project.write("annotations/a.yaml", A_FILE.replace("rating: good", "rating: bad"))

    applied = project.run("apply", "--auto-approve")

    assert applied.exit_code == 0, applied.output
    assert "warning: 1 file applied with changes not committed (annotations/a.yaml)" in (
        applied.stderr
    )
    # a reassertion credits no label to anything: it has nothing to warn about
    reasserted = project.run("apply", "--reassert", "--auto-approve")
    assert reasserted.exit_code == 0, reasserted.output
    assert "changes not committed" not in reasserted.stderr
    shown = project.run("state", "show", f"{TRACE}/274c568b4fffdfc5").stdout
    assert f"    commit: {head}\n" in shown
    assert "    uncommitted: " in shown
    blamed = project.run("state", "blame", f"{TRACE}/274c568b4fffdfc5", "rating").stdout
    assert f"commit {head[:7]} + uncommitted files (content " in blamed

    git(root, "commit", "-q", "-am", "bad")
    project.write("annotations/a.yaml", A_FILE)
    clean = project.run("apply", "--auto-approve")
    assert "not committed" in clean.stderr  # the file changed again
    git(root, "commit", "-q", "-am", "good again")
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_a_second_ctrl_c_stops_at_once_and_the_next_apply_finishes(tmp_path: Path) -> None:
    definitions = tmp_path / "orq.yaml"
    definitions.write_text(DEFINITIONS)
    # Every answer takes two seconds: requests are in flight when the signals come.
    emulator = Emulator(
        EmulatorConfig(
            api_keys=("k",),
            definitions_path=str(definitions),
            faults=FaultConfig(latency_ms=2000),
        )
    )
    spans = "".join(
        f"  - {{trace_id: {TRACE}, span_id: {n:016x}, annotations: {{rating: good}}}}\n"
        for n in range(1, 41)
    )
    project = Project(tmp_path / "p")
    project.write("definitions.yaml", DEFINITIONS)
    project.write("annotations/a.yaml", "version: 1\nspans:\n" + spans)
    with EmulatorServer(emulator) as server:
        project.write(
            "orqsync.yaml",
            f"version: 1\napi: {{base_url: '{server.url}', parallelism: 4}}\n",
        )
        env = {**os.environ, "ORQ_API_KEY": "k"}
        argv = [sys.executable, "-m", "orqsync", "-C", str(project.root)]
        with subprocess.Popen(
            [*argv, "apply", "--auto-approve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        ) as child:
            assert child.stderr is not None
            assert child.stderr.readline().startswith("Applying 40 requests")
            time.sleep(0.5)  # requests are in flight now: the signals must find them there
            child.send_signal(signal.SIGINT)
            time.sleep(0.5)
            child.send_signal(signal.SIGINT)
            rest = child.stderr.read()
            assert child.wait(timeout=60) == 3
        assert "error: interrupted again: stopped without waiting for the requests in" in rest
        assert "hint: run `orqsync apply` again" in rest
        assert "Traceback" not in rest

        again = subprocess.run(
            [*argv, "apply", "--auto-approve"], env=env, capture_output=True, text=True
        )
        assert again.returncode == 0, again.stderr
        after = subprocess.run(
            [*argv, "plan", "--detailed-exitcode"], env=env, capture_output=True, text=True
        )
        assert after.returncode == 0, after.stdout
    emulator.close()


def test_a_saved_plan_with_a_number_too_big_is_refused_as_damaged(tmp_path: Path) -> None:
    """Found by tests/fuzz.py: `"serial": 1e999` is infinity to json, and int() of it raised
    OverflowError through the whole command."""
    from orqsync.errors import OrqsyncError
    from orqsync.planning.planfile import load_plan

    saved = tmp_path / "plan.json"
    saved.write_text(
        '{"format": "orqsync-plan", "format_version": 2, "plan_id": "x", '
        '"metadata_style": "documented", "changes": [], "requests": [], '
        '"base": {"lineage": "l", "serial": 1e999, "state_hash": "", "definitions_hash": "", '
        '"files": {}, "project": ""}}'
    )
    with pytest.raises(OrqsyncError, match=r"plan\.json: the plan file is damaged"):
        load_plan(str(saved))
