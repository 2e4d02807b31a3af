"""The composite GitHub Action (action.yml at the repository's root): valid against GitHub's
schema, and its steps played as the runner plays them: each `run:` under `bash -e` with the
step's `env:` (its `${{ inputs.* }}` and `${{ github.action_path }}` resolved), RUNNER_TEMP,
GITHUB_OUTPUT, GITHUB_PATH and GITHUB_STEP_SUMMARY files, on a project against the built-in
emulator. The install step runs with a `python3` that records what it would install."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orqsync.commands.init import write_scaffold
from orqsync.review.markdown import MARKER

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

ROOT = Path(__file__).parent.parent
ACTION = ROOT / "action.yml"
BIN = Path(sys.executable).parent
EXPRESSION = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")


def action() -> dict:
    return yaml.safe_load(ACTION.read_text(encoding="utf-8"))


def outputs_of(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return dict(line.split("=", 1) for line in lines)


class Runner:
    """One job's files, and the action's steps played in it."""

    def __init__(self, tmp: Path, workspace: Path) -> None:
        self.workspace = workspace
        self.temp = tmp / "_temp"
        self.temp.mkdir()
        self.files = {
            name: tmp / f"{name}.txt" for name in ("GITHUB_OUTPUT", "GITHUB_PATH", "SUMMARY")
        }

    def play(
        self, step_name: str, inputs: dict[str, str], path: str = "", action_path: Path = ROOT
    ) -> subprocess.CompletedProcess:
        spec = action()
        given = {name: str(item.get("default", "")) for name, item in spec["inputs"].items()}
        given.update(inputs)
        step = next(s for s in spec["runs"]["steps"] if s["name"] == step_name)
        context = {"github.action_path": str(action_path)}
        context.update({f"inputs.{name}": value for name, value in given.items()})

        def resolve(text: str) -> str:
            return EXPRESSION.sub(lambda match: context[match[1]], text)

        script = self.temp / "step.sh"
        script.write_text(step["run"], encoding="utf-8")
        for file in self.files.values():
            file.write_text("", encoding="utf-8")
        env = {
            "PATH": path or f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(self.temp),
            "RUNNER_TEMP": str(self.temp),
            "GITHUB_OUTPUT": str(self.files["GITHUB_OUTPUT"]),
            "GITHUB_PATH": str(self.files["GITHUB_PATH"]),
            "GITHUB_STEP_SUMMARY": str(self.files["SUMMARY"]),
            **{name: resolve(str(value)) for name, value in step.get("env", {}).items()},
        }
        assert step["shell"] == "bash"
        return subprocess.run(
            ["bash", "-e", str(script)],
            cwd=self.workspace,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    @property
    def outputs(self) -> dict[str, str]:
        return outputs_of(self.files["GITHUB_OUTPUT"])


@pytest.fixture
def runner(tmp_path: Path) -> Runner:
    workspace = tmp_path / "labels"
    workspace.mkdir()
    write_scaffold(str(workspace / "project"), embedded=True)
    return Runner(tmp_path, workspace)


def test_the_action_is_valid_against_github_schema_and_a_broken_one_is_not(tmp_path: Path) -> None:
    def check(path: Path) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema"]
        return subprocess.run(
            [*command, "vendor.github-actions", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )

    done = check(ACTION)
    assert done.returncode == 0, done.stdout + done.stderr
    broken = tmp_path / "action.yml"
    broken.write_text(ACTION.read_text().replace("using: composite", "using: compound"))
    assert check(broken).returncode == 1


def test_its_outputs_are_those_the_run_step_writes() -> None:
    spec = action()
    for name, output in spec["outputs"].items():
        assert output["value"] == "${{ steps.run.outputs." + name + " }}"
        script = spec["runs"]["steps"][1]["run"]
        assert f"{name}=" in script or f'"{name}"' in script


def test_plan_passes_on_changes_and_gives_the_counts_and_the_comment(runner: Runner) -> None:
    done = runner.play("Run orqsync", {"directory": "project", "redact": "true"})
    assert done.returncode == 0, done.stdout + done.stderr
    outputs = runner.outputs
    assert outputs["exit-code"] == "2"  # changes pending
    assert "Changes pending." in done.stdout
    summary = json.loads(Path(outputs["plan-file"]).read_text())["summary"]
    assert summary["create"] > 0
    for name in ("create", "update", "delete", "requests"):
        assert outputs[name] == str(summary[name])
    comment = Path(outputs["comment-file"]).read_text(encoding="utf-8")
    assert comment.startswith(MARKER)
    assert runner.files["SUMMARY"].read_text(encoding="utf-8") == comment
    assert Path(outputs["plan-file"]).is_file()


def test_apply_then_plan_has_nothing_left(runner: Runner) -> None:
    done = runner.play("Run orqsync", {"command": "apply", "directory": "project"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert runner.outputs["exit-code"] == "0"
    assert int(runner.outputs["create"]) > 0 and runner.outputs["delete"] == "0"
    assert (runner.workspace / "project" / ".orqsync" / "state.json").is_file()
    done = runner.play("Run orqsync", {"directory": "project"})
    assert done.returncode == 0
    assert runner.outputs["exit-code"] == "0" and runner.outputs["requests"] == "0"


def test_validate_puts_problems_on_their_lines_and_fails(runner: Runner) -> None:
    (runner.workspace / "project" / "annotations" / "bad.yaml").write_text("version: 2\n")
    done = runner.play("Run orqsync", {"command": "validate", "directory": "project"})
    assert done.returncode == 1
    assert "::error file=" in done.stdout and "annotations/bad.yaml" in done.stdout
    assert runner.outputs == {"exit-code": "1"}


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"command": "destroy"}, 'must be validate, plan, apply or reassert, not "destroy"'),
        ({"args": "--no-such-option"}, "orqsync plan failed (exit 1)"),
    ],
)
def test_a_bad_input_fails_with_an_error(runner: Runner, inputs: dict, message: str) -> None:
    done = runner.play("Run orqsync", {"directory": "project", **inputs})
    assert done.returncode == 1
    assert message in done.stdout


def fake_orqsync(tmp: Path, exit_code: int) -> str:
    """A PATH whose `orqsync` records its arguments (a line a call) and exits `exit_code`
    when asked to apply (a plan before it passes, writing no plan)."""
    bin_dir = tmp / "fake-orqsync"
    bin_dir.mkdir()
    program = bin_dir / "orqsync"
    program.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> "{tmp}/orqsync-args"\n'
        f'case " $* " in *" apply "*) exit {exit_code} ;; esac\n'
    )
    program.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


@pytest.mark.parametrize(
    ("command", "code", "error"),
    [
        ("apply", 0, None),
        ("apply", 1, "orqsync apply failed (exit 1): the error is in the log above. Whatever"),
        ("apply", 3, "Partial apply (exit 3): the state is saved."),
        ("apply", 4, "Stale plan refused (exit 4): the state changed while this run planned."),
        ("apply", 5, "Removal budget exceeded (exit 5)"),
        ("apply", 7, "orqsync apply ended with the unexpected exit code 7"),
        ("reassert", 1, "changes waiting for an apply stop a reassertion"),
        ("reassert", 3, "Partial reassertion (exit 3): the state is saved"),
    ],
)
def test_apply_and_reassert_fail_loudly_with_what_to_do(
    runner: Runner, tmp_path: Path, command: str, code: int, error: str | None
) -> None:
    path = fake_orqsync(tmp_path, code)
    done = runner.play("Run orqsync", {"command": command, "directory": "project"}, path=path)
    assert done.returncode == code
    errors = [line for line in done.stdout.splitlines() if line.startswith("::error")]
    if error is None:
        assert errors == []
    else:
        (line,) = errors
        assert line.startswith(f"::error title=orqsync {command}::") and error in line
    assert runner.outputs["exit-code"] == str(code)


def test_apply_records_the_commit_checked_out_and_allows_removals_only_when_asked(
    runner: Runner, tmp_path: Path
) -> None:
    """GITHUB_SHA is the commit that triggered the run; the labels' provenance is the one
    checked out (a queued run checks out a newer main)."""
    git(runner.workspace, "init", "-q")
    git(runner.workspace, "add", "-A")
    git(runner.workspace, "commit", "-q", "-m", "labels")
    head = git(runner.workspace, "rev-parse", "HEAD")
    path = fake_orqsync(tmp_path, 0)
    inputs = {"command": "apply", "directory": "project", "args": "--max-duration 3000"}
    assert runner.play("Run orqsync", inputs, path=path).returncode == 0
    runner.play("Run orqsync", {**inputs, "allow-removals": "true"}, path=path)
    plan = f"{runner.temp}/orqsync/plan.json"
    assert (tmp_path / "orqsync-args").read_text().splitlines() == [
        f"-C project plan --out {plan}",
        f"-C project apply {plan} --auto-approve --commit {head} --max-duration 3000",
        f"-C project plan --out {plan}",
        f"-C project apply {plan} --auto-approve --commit {head} --allow-removals "
        "--max-duration 3000",
    ]


def test_reassert_sends_the_state_again(runner: Runner) -> None:
    assert runner.play("Run orqsync", {"command": "apply", "directory": "project"}).returncode == 0
    inputs = {"command": "reassert", "directory": "project", "args": "--max-requests 5"}
    done = runner.play("Run orqsync", inputs)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Reassertion: 1 span" in done.stdout
    assert runner.outputs == {"exit-code": "0"}  # no plan: a reassertion sends the state


def fake_python(tmp: Path) -> Path:
    """A `python3` whose `-m venv DIR` makes a venv whose python records the arguments of
    `-m pip install` (appended, one run a line) and puts an `orqsync` beside itself."""
    bin_dir = tmp / "fake-bin"
    bin_dir.mkdir()
    program = bin_dir / "python3"
    program.write_text(
        "#!/bin/sh\n"
        'mkdir -p "$3/bin"\n'
        "cat > \"$3/bin/python\" <<'EOF'\n"
        "#!/bin/sh\n"
        'echo "$*" >> "$RUNNER_TEMP/pip-args"\n'
        'printf "#!/bin/sh\\n" > "$(dirname "$0")/orqsync"\n'
        'chmod +x "$(dirname "$0")/orqsync"\n'
        "EOF\n"
        'chmod +x "$3/bin/python"\n'
    )
    program.chmod(0o755)
    return bin_dir


def pip_runs(runner: Runner) -> list[str]:
    pip_args = runner.temp / "pip-args"
    return pip_args.read_text().splitlines() if pip_args.exists() else []


@pytest.mark.parametrize(
    ("version", "installed"),
    [("", str(ROOT)), ("orqsync==0.1.0", "orqsync==0.1.0")],
    ids=["own-checkout", "pinned"],
)
def test_install_takes_its_own_checkout_or_a_pinned_version(
    runner: Runner, tmp_path: Path, version: str, installed: str
) -> None:
    path = f"{fake_python(tmp_path)}{os.pathsep}{os.environ['PATH']}"
    done = runner.play("Install orqsync", {"version": version}, path=path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert pip_runs(runner) == [f"-m pip install --quiet {installed}"]
    venv_bin = runner.temp / "orqsync-venv" / "bin"
    assert runner.files["GITHUB_PATH"].read_text() == f"{venv_bin}\n"
    # a second step of the job that uses the action installs nothing; another version does
    again = runner.play("Install orqsync", {"version": version}, path=path)
    assert again.returncode == 0 and f"orqsync is installed already ({installed})" in again.stdout
    assert runner.files["GITHUB_PATH"].read_text() == f"{venv_bin}\n"
    other = runner.play("Install orqsync", {"version": "orqsync==9.9.9"}, path=path)
    assert other.returncode == 0
    assert pip_runs(runner)[1:] == ["-m pip install --quiet orqsync==9.9.9"]


@pytest.mark.parametrize(
    "version",
    [
        "orqsync",
        'orqsync; python_version >= "3"',  # a bare name behind a marker
        "orqsync==0.*",
        "orqsync>=0.1",
        "orqsync @ https://example.test/x.whl; extra",
        "other==1.0",
    ],
)
def test_install_refuses_what_is_not_one_release(
    runner: Runner, tmp_path: Path, version: str
) -> None:
    path = f"{fake_python(tmp_path)}{os.pathsep}{os.environ['PATH']}"
    done = runner.play("Install orqsync", {"version": version}, path=path)
    assert done.returncode == 1
    assert f'version "{version}" is not pinned' in done.stdout
    assert pip_runs(runner) == []


def test_args_over_several_lines_are_all_passed(runner: Runner, tmp_path: Path) -> None:
    path = fake_orqsync(tmp_path, 0)
    inputs = {"command": "apply", "directory": "project", "args": "--max-duration 3000\n--x\n"}
    assert runner.play("Run orqsync", inputs, path=path).returncode == 0
    applied = (tmp_path / "orqsync-args").read_text().splitlines()[-1]
    assert applied.endswith("--auto-approve --max-duration 3000 --x")


def test_a_copy_of_the_action_without_a_version_says_to_give_one(runner: Runner, tmp_path: Path):
    """The copy `init --github` writes to .github/actions/orqsync has no orqsync beside it."""
    copy = runner.workspace / ".github" / "actions" / "orqsync"
    copy.mkdir(parents=True)
    shutil.copy(ACTION, copy / "action.yml")
    path = f"{fake_python(tmp_path)}{os.pathsep}{os.environ['PATH']}"
    done = runner.play("Install orqsync", {}, path=path, action_path=copy)
    assert done.returncode == 1
    assert f"this copy of the action ({copy}) is not a checkout of orqsync" in done.stdout
    assert "give the step `version: orqsync==VERSION`" in done.stdout
    assert pip_runs(runner) == []


# The GitLab example -------------------------------------------------------------------------

GITLAB = ROOT / "examples" / "gitlab" / ".gitlab-ci.yml"


def test_the_gitlab_example_is_valid_against_gitlabs_schema_and_pins_orqsync() -> None:
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.gitlab-ci"]
    done = subprocess.run([*command, str(GITLAB)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    pipeline = yaml.safe_load(GITLAB.read_text(encoding="utf-8"))
    assert re.fullmatch(r"orqsync==\d+\.\d+\.\d+", pipeline["variables"]["ORQSYNC_PACKAGE"])
    assert pipeline["orqsync-apply"]["resource_group"] == "orqsync-apply"
    assert "ORQ_API_KEY" not in pipeline["variables"]  # a masked CI/CD variable, never the file


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "A",
        "GIT_AUTHOR_EMAIL": "a@example.com",
        "GIT_COMMITTER_NAME": "A",
        "GIT_COMMITTER_EMAIL": "a@example.com",
    }
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_gitlab_plan_job_plans_a_merge_request(tmp_path: Path) -> None:
    """The plan job's script, line by line as GitLab runs it, in a clone of a merge request
    (pip install played by this virtualenv on PATH)."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(origin), str(work))
    write_scaffold(str(work), embedded=True)
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "labels")
    git(work, "push", "-q", "origin", "HEAD:main")
    git(work, "checkout", "-q", "-b", "relabel")
    job = yaml.safe_load(GITLAB.read_text(encoding="utf-8"))["orqsync-plan"]
    script = "\n".join(job["script"])
    env = {
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "GIT_CONFIG_GLOBAL": os.devnull,
        "ORQSYNC_DIR": ".",
        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
        "ORQSYNC_NOTE_TOKEN": "",
    }
    done = subprocess.run(
        ["bash", "-e", "-c", script], cwd=work, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Changes pending" in done.stdout
    assert (work / "plan.md").read_text(encoding="utf-8").startswith(MARKER)
    assert json.loads((work / "plan.json").read_text())["summary"]["create"] > 0
