"""Finding the project as git finds its repository: orqsync.yaml in the folder (-C, or the
current one), else in the nearest folder above it; paths stay relative to that folder."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import Project, Result

from orqsync.cli import cli
from orqsync.errors import OrqsyncError
from orqsync.source.project import PROJECT_FILE, find_project, load_project

SPAN = """\
version: 1
spans:
  - trace_id: t1
    span_id: s1
    annotations:
      rating: {rating}
"""
NO_PROJECT_HINT = "  hint: run `orqsync init` to create a project, or pass -C DIR to point at one\n"


def run(*args: str) -> Result:
    """The CLI in process, without the -C that Project.run passes: it starts where the test
    has chdir'ed to."""
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return Result(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def project(make_project: Callable[..., Project]) -> Project:
    made = make_project(**{"annotations/team/a.yaml": SPAN.format(rating="good")})
    (made.root / "annotations" / "team" / "deeper").mkdir()
    return made


def no_project_above(folder: Path) -> None:
    for parent in [folder, *folder.parents]:
        if (parent / PROJECT_FILE).is_file():
            pytest.skip(f"{parent / PROJECT_FILE} exists above the test's folder")


@pytest.mark.parametrize("sub", ["annotations", "annotations/team/deeper"])
def test_plan_and_validate_from_a_subfolder_find_the_project(
    project: Project, monkeypatch: pytest.MonkeyPatch, sub: str
) -> None:
    expected_plan = project.run("plan")
    expected_validate = project.run("validate")
    assert expected_plan.exit_code == 0 and "+ rating" in expected_plan.stdout
    monkeypatch.chdir(project.root / sub)
    assert run("plan") == expected_plan  # paths shown relative to the project, as from its root
    assert run("validate") == expected_validate
    assert "annotations/team/a.yaml" in expected_plan.stdout


def test_C_naming_a_subfolder_finds_the_project_too(project: Project) -> None:
    expected = project.run("plan")
    assert run("-C", str(project.root / "annotations" / "team"), "plan") == expected


def test_apply_from_a_subfolder_keeps_the_state_where_orqsync_yaml_says(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = project.root / "annotations" / "team"
    monkeypatch.chdir(sub)
    done = run("apply", "--auto-approve")
    assert done.exit_code == 0, done.output
    assert (project.root / ".orqsync" / "state.json").is_file()
    assert not (sub / ".orqsync").exists()
    assert "t1/s1" in run("state", "list").stdout
    assert run("plan").stdout.startswith("No changes.")


def test_the_nearest_project_wins(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    inner = project.root / "annotations" / "team" / "deeper"
    (inner / PROJECT_FILE).write_text(
        (project.root / PROJECT_FILE).read_text(encoding="utf-8"), encoding="utf-8"
    )
    (inner / "definitions.yaml").write_text(
        (project.root / "definitions.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    (inner / "annotations").mkdir()
    (inner / "annotations" / "b.yaml").write_text(SPAN.format(rating="bad"), encoding="utf-8")
    assert load_project(str(inner)).root == str(inner)
    assert load_project(str(inner.parent)).root == str(project.root)
    monkeypatch.chdir(inner / "annotations")
    done = run("plan")
    assert done.exit_code == 0, done.output
    assert "(annotations/b.yaml)" in done.stdout and "a.yaml" not in done.stdout
    assert '+ rating = "bad"' in done.stdout


def test_load_project_and_find_project_walk_up(project: Project) -> None:
    sub = project.root / "annotations" / "team" / "deeper"
    assert find_project(str(sub)) == str(project.root)
    settings = load_project(str(sub))
    assert settings.root == str(project.root)
    assert settings.state_path == str(project.root / ".orqsync" / "state.json")


def test_C_naming_a_folder_that_does_not_exist(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "no-such-dir"
    for command in (["validate"], ["plan"], ["state", "list"], ["apply", "--auto-approve"]):
        done = run("-C", str(missing), *command)
        assert done.exit_code == 1, command
        assert done.stdout == ""
        assert done.stderr == (
            f"error: the folder {missing} does not exist\n"
            "  hint: pass -C the folder that holds orqsync.yaml, or create a project there "
            f"with `orqsync -C {missing} init`\n"
        )
    monkeypatch.chdir(project.root)  # a relative -C is named as typed, and where it points
    done = run("-C", "no-such-dir", "validate")
    assert (done.exit_code, done.stderr) == (
        1,
        f"error: the folder no-such-dir ({project.root / 'no-such-dir'}) does not exist\n"
        "  hint: pass -C the folder that holds orqsync.yaml, or create a project there "
        "with `orqsync -C no-such-dir init`\n",
    )


def test_C_naming_a_file(project: Project) -> None:
    done = run("-C", str(project.root / PROJECT_FILE), "validate")
    assert done.exit_code == 1
    assert done.stderr.startswith("error: Invalid value for '-C': ")
    with pytest.raises(OrqsyncError) as raised:
        find_project(str(project.root / PROJECT_FILE))
    assert raised.value.message == f"{project.root / PROJECT_FILE} is not a folder"


def test_no_project_anywhere_names_where_the_search_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = tmp_path / "empty" / "sub"
    start.mkdir(parents=True)
    no_project_above(start)
    message = f"error: no orqsync.yaml in {start} or any folder above it\n" + NO_PROJECT_HINT
    monkeypatch.chdir(start)
    for command in (["validate"], ["plan"], ["state", "history"], ["export"]):
        done = run(*command)
        assert (done.exit_code, done.stdout, done.stderr) == (1, "", message), command
    done = run("-C", str(start), "plan")
    assert (done.exit_code, done.stderr) == (1, message)


def test_discovery_in_a_real_process_from_a_subfolder(
    project: Project, tmp_path_factory: pytest.TempPathFactory
) -> None:
    def process(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "orqsync", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
        )

    done = process(project.root / "annotations" / "team", "plan")
    assert (done.returncode, done.stdout) == (0, project.run("plan").stdout), done.stderr
    outside = tmp_path_factory.mktemp("elsewhere")
    no_project_above(outside)
    done = process(outside, "validate")
    assert done.returncode == 1
    assert done.stderr == (
        f"error: no orqsync.yaml in {outside} or any folder above it\n" + NO_PROJECT_HINT
    )


def test_validate_github_places_problems_from_a_subfolder_at_their_repository_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_project: Callable[..., Project]
) -> None:
    project = make_project(**{"labels/annotations/a.yaml": SPAN.format(rating="great")})
    labels = project.root / "labels"
    for name in (PROJECT_FILE, "definitions.yaml"):
        (project.root / name).rename(labels / name)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)
    subprocess.run(["git", "init", "-q", str(project.root)], check=True)
    monkeypatch.chdir(labels / "annotations")
    done = run("validate", "--format", "github")
    assert done.exit_code == 1
    assert done.stdout.startswith("::error file=labels/annotations/a.yaml,line=6,col=15,")
    # a problem of orqsync.yaml itself is placed right too (found before it is read)
    (labels / PROJECT_FILE).write_text("version: 1\nworkspace: [\n", encoding="utf-8")
    done = run("validate", "--format", "github")
    assert done.exit_code == 1
    assert done.stdout.startswith("::error file=labels/orqsync.yaml,"), done.stdout
