"""End to end: the example GitHub workflows played, pull request then merge, on a temporary git
repository against the emulator served on 127.0.0.1.

The jobs of examples/github/orqsync-plan.yml, orqsync-apply.yml and orqsync-reassert.yml are
played step by step as the Actions runner would: each `run:` script under `bash -e` in a checkout
of a bare `origin`, with the runner's GITHUB_* variables, the workflow's and the step's `env:`
(expressions resolved from the event), and each step's `if:` decided from the outcomes so far.
The orqsync action (`uses: ./.github/actions/orqsync`, the copy `init --github` committed to the
repository) is run too: its composite steps, with its inputs, GITHUB_OUTPUT, GITHUB_PATH and its
outputs as the step's. Its `pip install` is played: a `python3` first on PATH makes the venv
with this project's `orqsync` in it and records what pip would install. Other `uses:` steps are
not run; their effect is played (the checkout is a real fetch from origin, the sticky comment is
the file or message it would post, an artifact is the path it would upload). Nothing reaches
the network.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

import httpx
import pytest
import yaml

from orqsync import __version__
from orqsync.commands import plan as plan_command
from orqsync.commands.init import DEFINITIONS, GITIGNORE, workflow_files
from orqsync.emulator import Emulator, EmulatorConfig, EmulatorServer
from orqsync.planning.cache import cache_path
from orqsync.review.markdown import MARKER
from orqsync.review.render import NO_CHANGES
from orqsync.source.project import load_project

pytestmark = pytest.mark.skipif(
    shutil.which("git") is None or shutil.which("bash") is None, reason="needs git and bash"
)

EXAMPLES = Path(__file__).parent.parent / "examples" / "github"
BIN = Path(sys.executable).parent
KEY = "sk-orq-e2e-0000-githubsecret"
REPOSITORY = "acme/labels"
SERVER = "https://github.com"

ALICE = ("Alice", "alice@example.com")
BOB = ("Bob", "bob@example.com")
CAROL = ("Carol", "carol@example.com")
BOT = "github-actions[bot] <41898282+github-actions[bot]@users.noreply.github.com>"
LOCAL_ACTION = "./.github/actions/orqsync"

TRACE = "cb2289e8eae4e587f8bba591734cc831"
A, B, C, D = "274c568b4fffdfc5", "5f0e2a9d81c34b70", "a1b2c3d4e5f60718", "0d9e8f7a6b5c4d3e"

PROJECT = """\
version: 1
workspace: acme-support
api:
  base_url: {base_url}
  api_key_env: ORQ_API_KEY
  parallelism: 2
definitions: definitions.yaml
sources: ["annotations/**/*.yaml"]
state: .orqsync/state.json
metadata: {{source: orqsync}}
"""

SUPPORT = f"""\
version: 1
metadata: {{reviewerId: alice}}
spans:
  - trace_id: {TRACE}
    span_id: {A}
    annotations:
      rating: good
      defects: [grammatical]
      confidence_score: 0.9
  - trace_id: {TRACE}
    span_id: {B}
    annotations:
      rating: good
  - trace_id: {TRACE}
    span_id: {C}
    annotations:
      rating: good
      correction: Mention the refund window.
"""

TRIAGE = f"""\
version: 1
metadata: {{reviewerId: bob}}
spans:
  - trace_id: {TRACE}
    span_id: {D}
    annotations:
      defects: [hallucination, ambiguity]
      approved: false
"""


def relabelled(text: str) -> str:
    """The first pull request's edit: B and C flip to bad, A loses its confidence_score."""
    lines = text.splitlines(keepends=True)
    out, span = [], None
    for line in lines:
        if "span_id:" in line:
            span = line.split(":", 1)[1].strip()
        if span in (B, C) and line.strip() == "rating: good":
            line = line.replace("good", "bad")
        if span == A and "confidence_score" in line:
            continue
        out.append(line)
    return "".join(out)


# -- git, isolated from the user's configuration ---------------------------------------------


def base_env(home: Path) -> dict[str, str]:
    """No inherited variables: no API key, no user git configuration, this project's orqsync."""
    return {
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CEILING_DIRECTORIES": str(home.parent),
    }


def git(cwd: Path, *args: str, who: tuple[str, str] | None = None) -> str:
    env = base_env(cwd.parent)
    if who is not None:
        env |= {
            "GIT_AUTHOR_NAME": who[0],
            "GIT_AUTHOR_EMAIL": who[1],
            "GIT_COMMITTER_NAME": who[0],
            "GIT_COMMITTER_EMAIL": who[1],
        }
    done = subprocess.run(
        ["git", "-c", "commit.gpgsign=false", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"git {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout.strip()


# -- the runner: expressions, conditions, steps -----------------------------------------------

_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_COMPARISON = re.compile(r"(\S+)\s*(==|!=)\s*(\S+)")
_STATUS = {"success()", "failure()", "always()", "cancelled()"}
_STEP_KEYS = {"name", "id", "if", "uses", "with", "run", "env"}
_OUTPUT = re.compile(r"\$\{\{ steps\.(\w+)\.outputs\.([\w-]+) \}\}")  # an action's output


def lookup(path: str, context: dict) -> str:
    """A dotted context path as the runner turns it into text; `secrets` and `inputs` that
    are not set are empty, any other unknown path is a mistake in the workflow."""
    value: object = context
    parts = path.split(".")
    for depth, part in enumerate(parts):
        if not isinstance(value, dict) or part not in value:
            if parts[0] in ("secrets", "inputs") and depth == 1:
                return ""
            raise AssertionError(f"the workflow reads {path}, which the event does not have")
        value = value[part]
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def resolve(text: str, context: dict) -> str:
    def one(match: re.Match) -> str:
        if not re.fullmatch(r"[A-Za-z_][\w.-]*", match[1]):
            raise AssertionError(f"unsupported expression {match[0]!r}")
        return lookup(match[1], context)

    return _EXPRESSION.sub(one, text)


def holds(condition: str | None, context: dict, failed: bool) -> bool:
    """An `if:` of `&&`-joined status functions and comparisons (all these workflows use)."""
    if condition is None:
        return not failed
    inner = _EXPRESSION.fullmatch(condition.strip())
    condition = inner[1] if inner else condition
    status, result = "success()", True
    for term in (part.strip() for part in condition.split("&&")):
        if term in _STATUS:
            status = term
            continue
        match = _COMPARISON.fullmatch(term)
        assert match, f"unsupported condition {condition!r}"
        left, right = (
            side[1:-1] if side.startswith("'") else lookup(side, context)
            for side in (match[1], match[3])
        )
        result = result and ((left == right) == (match[2] == "=="))
    return (
        result
        and {
            "success()": not failed,
            "failure()": failed,
            "always()": True,
            "cancelled()": False,
        }[status]
    )


@dataclass
class StepRun:
    name: str
    outcome: str  # success, failure, skipped, or played (a `uses:` step or pip install)
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    env: dict[str, str] = field(default_factory=dict)  # what a `run:` script was given
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass
class Job:
    run_id: str
    workspace: Path
    env: dict[str, str]
    steps: dict[str, StepRun] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)  # what the sticky comment would show
    artifacts: dict[str, Path | list[Path]] = field(default_factory=dict)
    summary: str = ""
    skipped: bool = False
    paths: list[str] = field(default_factory=list)  # GITHUB_PATH, newest first
    installed: list[str] = field(default_factory=list)  # what pip would have installed

    @property
    def failed(self) -> bool:
        return any(step.outcome == "failure" for step in self.steps.values())

    @property
    def log(self) -> str:
        return "".join(
            f"--- {s.name}: {s.outcome}\n{s.stdout}{s.stderr}" for s in self.steps.values()
        )


def python_shim(home: Path) -> Path:
    """A folder with the `python3` the orqsync action finds: `python3 -m venv DIR` makes a venv
    whose `orqsync` is this project's and whose `python -m pip install ... REQUIREMENT` records
    the requirement in _temp/pip-installs; anything else is this Python."""
    folder = home / "shim"
    folder.mkdir()
    pip = folder / "venv-python"
    pip.write_text(
        '#!/bin/sh\nfor last in "$@"; do :; done\n'
        f'echo "$last" >> "{home / "_temp" / "pip-installs"}"\n'
    )
    shim = folder / "python3"
    shim.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = -m ] && [ "$2" = venv ]; then\n'
        '  mkdir -p "$3/bin"\n'
        f'  ln -s "{BIN / "orqsync"}" "$3/bin/orqsync"\n'
        f'  cp "{pip}" "$3/bin/python"\n'
        '  chmod +x "$3/bin/python"\n'
        "  exit 0\n"
        "fi\n"
        f'exec "{sys.executable}" "$@"\n'
    )
    shim.chmod(0o755)
    return folder


def load_workflow(name: str, project_dir: str) -> dict:
    """The example workflow, with ORQSYNC_DIR set as `orqsync init --github` sets it."""
    text = (EXAMPLES / name).read_text(encoding="utf-8")
    if project_dir != ".":
        assert text.count("  ORQSYNC_DIR: .\n") == 1
        text = text.replace("  ORQSYNC_DIR: .\n", f"  ORQSYNC_DIR: {project_dir}\n")
    workflow = yaml.safe_load(text)
    workflow["on"] = workflow.pop(True)  # YAML 1.1 reads the key `on` as true
    return workflow


@dataclass
class GitHub:
    """The hosting side: origin, the events it sends and the runner that plays the jobs."""

    root: Path
    origin: Path
    project_dir: str
    runs: count = field(default_factory=lambda: count(7001))
    jobs: list[Job] = field(default_factory=list)

    def checkout(self, workspace: Path, ref: str, depth: int) -> None:
        """What actions/checkout@v4 does: fetch `ref` (depth 0: all history) and check it out."""
        git(workspace.parent, "init", "-q", workspace.name)
        git(workspace, "remote", "add", "origin", self.origin.as_uri())
        deep = [] if depth == 0 else [f"--depth={depth}"]
        if ref.startswith("refs/heads/"):
            branch = ref.removeprefix("refs/heads/")
            git(workspace, "fetch", "-q", *deep, "origin", "+refs/heads/*:refs/remotes/origin/*")
            git(
                workspace,
                "checkout",
                "-q",
                "--force",
                "-B",
                branch,
                f"refs/remotes/origin/{branch}",
            )
        else:
            local = "refs/remotes/" + ref.removeprefix("refs/")
            git(workspace, "fetch", "-q", *deep, "origin", f"+{ref}:{local}")
            git(workspace, "checkout", "-q", "--force", "--detach", local)

    def play(self, workflow: dict, github: dict, secrets: dict[str, str]) -> Job:
        """Run the workflow's one job for the event `github`, as the runner would."""
        (job_spec,) = workflow["jobs"].values()
        run_id = str(next(self.runs))
        github = {
            "repository": REPOSITORY,
            "server_url": SERVER,
            "run_id": run_id,
            "workspace": "",
            **github,
        }
        home = self.root / f"run-{run_id}"
        workspace = home / "labels"
        temp = home / "_temp"
        temp.mkdir(parents=True)
        github["workspace"] = str(workspace)
        context = {"github": github, "secrets": secrets, "inputs": github.get("inputs", {})}
        env = {key: resolve(str(value), context) for key, value in workflow["env"].items()}
        context["env"] = env
        runner_env = {
            **base_env(home),
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(workspace),
            "GITHUB_EVENT_NAME": github["event_name"],
            "GITHUB_SHA": github["sha"],
            "GITHUB_REF": github["ref"],
            "GITHUB_REF_NAME": github["ref"].split("/", 2)[2],
            "GITHUB_REF_TYPE": "branch",
            "GITHUB_ACTOR": github["actor"],
            "GITHUB_REPOSITORY": REPOSITORY,
            "GITHUB_SERVER_URL": SERVER,
            "GITHUB_RUN_ID": run_id,
            "GITHUB_RUN_ATTEMPT": "1",
            "GITHUB_EVENT_PATH": str(temp / "event.json"),
            "RUNNER_TEMP": str(temp),
            "TMPDIR": str(temp),
        }
        (temp / "event.json").write_text(json.dumps(github.get("event", {})), encoding="utf-8")
        runner_env["PATH"] = f"{python_shim(home)}{os.pathsep}{runner_env['PATH']}"
        if github["event_name"] == "pull_request":
            pull = github["event"]["pull_request"]
            runner_env |= {"GITHUB_HEAD_REF": pull["head"]["ref"], "GITHUB_BASE_REF": "main"}
        job = Job(run_id, workspace, {**runner_env, **env})
        self.jobs.append(job)
        if not holds(job_spec.get("if"), context, failed=False):
            job.skipped = True
            return job
        context["steps"] = {}
        for number, spec in enumerate(job_spec["steps"]):
            assert set(spec) <= _STEP_KEYS, f"a step the runner here cannot play: {spec}"
            name = spec.get("name") or spec["uses"]
            if not holds(spec.get("if"), context, job.failed):
                result = StepRun(name, "skipped")
            elif spec.get("uses") == LOCAL_ACTION:
                result = self._composite(job, spec, context)
            elif "uses" in spec:
                result = self._action(job, spec, context)
            else:
                result = self._run(job, spec, context, temp / f"step{number}")
            job.steps[name] = result
            if "id" in spec:
                outcome = "success" if result.outcome == "played" else result.outcome
                context["steps"][spec["id"]] = {
                    "outcome": outcome,
                    "conclusion": outcome,
                    "outputs": result.outputs,
                }
        return job

    def _run(
        self, job: Job, spec: dict, context: dict, base: Path, in_action: bool = False
    ) -> StepRun:
        script = spec["run"]
        # the orqsync action's install step runs (python3 is the shim); nothing else installs
        assert in_action or "pip " not in script, f"a step that would download: {script}"
        step_env = {key: resolve(str(value), context) for key, value in spec.get("env", {}).items()}
        output, summary = base.with_suffix(".output"), base.with_suffix(".summary")
        added = base.with_suffix(".path")
        for file in (output, summary, added):
            file.touch()
        base.with_suffix(".sh").write_text(script, encoding="utf-8")
        env = {
            **job.env,
            **step_env,
            "PATH": os.pathsep.join([*job.paths, job.env["PATH"]]),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_PATH": str(added),
            "GITHUB_STEP_SUMMARY": str(summary),
        }
        done = subprocess.run(
            ["bash", "-e", str(base.with_suffix(".sh"))],
            cwd=job.workspace,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        job.summary += summary.read_text(encoding="utf-8")
        job.paths[:0] = reversed(added.read_text(encoding="utf-8").splitlines())
        outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
        outcome = "success" if done.returncode == 0 else "failure"
        name = spec.get("name", "")
        return StepRun(name, outcome, done.returncode, done.stdout, done.stderr, env, outputs)

    def _composite(self, job: Job, spec: dict, context: dict) -> StepRun:
        """The orqsync action as the runner runs a local composite action: from the checkout,
        its steps one after the other until one fails, its outputs those of its steps."""
        path = job.workspace / spec["uses"]
        action = yaml.safe_load((path / "action.yml").read_text(encoding="utf-8"))
        assert action["runs"]["using"] == "composite"
        given = {name: str(item.get("default", "")) for name, item in action["inputs"].items()}
        unknown = set(spec.get("with", {})) - set(given)
        assert not unknown, f"inputs the action does not have: {unknown}"
        given |= {key: resolve(str(value), context) for key, value in spec["with"].items()}
        inner = {"inputs": given, "github": {**context["github"], "action_path": str(path)}}
        ran = StepRun(spec["name"], "success")
        steps: dict[str, dict[str, str]] = {}
        for number, step in enumerate(action["runs"]["steps"]):
            assert set(step) <= {"name", "id", "shell", "env", "run"} and step["shell"] == "bash"
            base = job.workspace.parent / "_temp" / f"action{len(job.steps)}-{number}"
            result = self._run(job, step, inner, base, in_action=True)
            ran.stdout += result.stdout
            ran.stderr += result.stderr
            ran.env |= result.env
            steps[step.get("id", str(number))] = result.outputs
            if result.outcome == "failure":
                ran.outcome, ran.returncode = "failure", result.returncode
                break
        for name, output in action["outputs"].items():
            step_id, key = _OUTPUT.fullmatch(output["value"]).groups()
            ran.outputs[name] = steps.get(step_id, {}).get(key, "")
        job.installed = (job.workspace.parent / "_temp" / "pip-installs").read_text().split()
        return ran

    def _action(self, job: Job, spec: dict, context: dict) -> StepRun:
        action, _, version = spec["uses"].partition("@")
        given = {key: resolve(str(value), context) for key, value in spec.get("with", {}).items()}
        name = spec.get("name") or spec["uses"]
        if action == "actions/checkout":
            assert version == CHECKOUT_SHA
            ref = given.get("ref") or context["github"]["ref"]
            self.checkout(job.workspace, ref, int(given.get("fetch-depth", "1")))
        elif action == "actions/setup-python":
            assert given == {"python-version": "3.12"}
        elif action == "actions/upload-artifact":
            # a path, or patterns one a line (* within a folder; hidden files when asked)
            found: list[Path] = []
            for line in filter(None, (line.strip() for line in given["path"].splitlines())):
                pattern = Path(os.path.normpath(job.workspace / line))
                if "*" not in line:
                    found += [pattern] if pattern.exists() else []
                    continue
                matched = sorted(pattern.parent.glob(pattern.name))
                if given.get("include-hidden-files") != "true":
                    matched = [m for m in matched if not m.name.startswith(".")]
                found += matched
            if not found:
                if given.get("if-no-files-found") == "error":
                    return StepRun(name, "failure", stderr=f"no files at {given['path']}")
            else:
                job.artifacts[given["name"]] = found[0] if len(found) == 1 else found
        elif action == "marocchino/sticky-pull-request-comment":
            assert given["header"] == "orqsync"
            if "path" in given:
                job.comments.append((job.workspace / given["path"]).read_text(encoding="utf-8"))
            else:
                job.comments.append(given["message"])
        else:
            raise AssertionError(f"an action the runner here cannot play: {spec['uses']}")
        return StepRun(name, "played")


# -- the repository and the people who work in it ---------------------------------------------


@dataclass
class World:
    root: Path
    hub: GitHub
    dev: Path  # a developer's clone
    project: Path  # the project inside it
    server: EmulatorServer
    plan_workflow: dict
    apply_workflow: dict
    pulls: count = field(default_factory=lambda: count(1))

    @property
    def rel(self) -> str:
        return self.hub.project_dir

    @property
    def prefix(self) -> str:
        """The project's path from the repository root, as GitHub shows files."""
        return "" if self.rel == "." else self.rel + "/"

    def write(self, relative: str, text: str) -> None:
        path = self.project / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    def read(self, relative: str) -> str:
        return (self.project / relative).read_text(encoding="utf-8")

    def commit(self, message: str, who: tuple[str, str]) -> str:
        git(self.dev, "add", "-A")
        git(self.dev, "commit", "-q", "-m", message, who=who)
        return git(self.dev, "rev-parse", "HEAD")

    def push_main(self, actor: str) -> Job:
        """Push main; GitHub runs the apply workflow for the push."""
        git(self.dev, "push", "-q", "origin", "main")
        sha = git(self.dev, "rev-parse", "HEAD")
        return self.hub.play(
            self.apply_workflow,
            {"event_name": "push", "ref": "refs/heads/main", "sha": sha, "actor": actor},
            {"ORQ_API_KEY": KEY},
        )

    def open_pull_request(self, branch: str, actor: str) -> tuple[Job, str]:
        """Push `branch` and play the plan workflow on GitHub's test merge into main."""
        number = next(self.pulls)
        git(self.dev, "push", "-q", "origin", f"{branch}:refs/heads/{branch}")
        head = git(self.dev, "rev-parse", branch)
        merger = self.root / f"pull-{number}"  # GitHub's refs/pull/N/merge
        git(self.root, "clone", "-q", self.hub.origin.as_uri(), merger.name)
        git(
            merger,
            "merge",
            "-q",
            "--no-ff",
            "--no-edit",
            f"origin/{branch}",
            who=("GitHub", "noreply@github.com"),
        )
        git(
            merger,
            "push",
            "-q",
            "origin",
            f"HEAD:refs/pull/{number}/merge",
            f"origin/{branch}:refs/pull/{number}/head",
        )
        merge = git(merger, "rev-parse", "HEAD")
        event = {
            "pull_request": {
                "number": number,
                "head": {"sha": head, "ref": branch, "repo": {"full_name": REPOSITORY}},
                "base": {"ref": "main", "repo": {"full_name": REPOSITORY}},
            }
        }
        github = {
            "event_name": "pull_request",
            "ref": f"refs/pull/{number}/merge",
            "sha": merge,
            "actor": actor,
            "event": event,
        }
        return self.hub.play(self.plan_workflow, github, {}), head

    def merge(self, branch: str, who: tuple[str, str]) -> str:
        """The merge button: a merge commit on main."""
        git(self.dev, "checkout", "-q", "main")
        git(self.dev, "pull", "-q", "--ff-only", "origin", "main")
        git(self.dev, "merge", "-q", "--no-ff", branch, "-m", f"Merge branch {branch}", who=who)
        return git(self.dev, "rev-parse", "HEAD")

    def pull(self) -> str:
        git(self.dev, "checkout", "-q", "main")
        git(self.dev, "pull", "-q", "--ff-only", "origin", "main")
        return git(self.dev, "rev-parse", "HEAD")

    def orqsync(self, *args: str) -> subprocess.CompletedProcess:
        """The CLI as the developer runs it in their clone."""
        return subprocess.run(
            [str(BIN / "orqsync"), "-C", self.rel, *args],
            cwd=self.dev,
            env=base_env(self.root / "home"),
            capture_output=True,
            text=True,
            check=False,
        )

    def export(self, *args: str) -> bytes:
        done = subprocess.run(
            [str(BIN / "orqsync"), "-C", self.rel, "export", "--format", "jsonl", *args],
            cwd=self.dev,
            env=base_env(self.root / "home"),
            capture_output=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout

    def sent_since(self, seq: int) -> list[tuple[str, str, int]]:
        url = f"{self.server.url}/_emulator/requests?since={seq}"
        entries = httpx.get(url).json()["requests"]
        return sorted((r["method"], r["path"].rsplit("/", 2)[1], r["status"]) for r in entries)

    def held(self) -> dict[tuple[str, str, str], object]:
        rows = httpx.get(self.server.url + "/_emulator/annotations").json()["annotations"]
        return {(r["trace_id"], r["span_id"], r["key"]): canonical(r["value"]) for r in rows}

    def requests(self) -> int:
        return httpx.get(self.server.url + "/_emulator/requests").json()["count"]

    def desired(self) -> dict[tuple[str, str, str], object]:
        found = {}
        for path in sorted((self.project / "annotations").glob("*.yaml")):
            for span in yaml.safe_load(path.read_text(encoding="utf-8"))["spans"]:
                for key, value in span["annotations"].items():
                    found[(span["trace_id"], span["span_id"], key)] = canonical(value)
        return found


def canonical(value: object) -> object:
    return tuple(sorted(value)) if isinstance(value, list) else value


@pytest.fixture
def world(request, tmp_path):
    """The repository, origin and the emulator; the project at the root or in `request.param`."""
    root = tmp_path
    (root / "home").mkdir()
    definitions = root / "orq-definitions.yaml"  # the workspace's definitions in orq.ai
    definitions.write_text(DEFINITIONS, encoding="utf-8")
    emulator = Emulator(
        EmulatorConfig(
            api_keys=(KEY,),
            definitions_path=str(definitions),
            known_spans=frozenset((TRACE, span) for span in (A, B, C, D)),
        )
    )
    origin = root / "origin.git"
    git(root, "init", "-q", "--bare", "-b", "main", origin.name)
    git(root, "clone", "-q", origin.as_uri(), "dev")
    with EmulatorServer(emulator) as server:
        project_dir = getattr(request, "param", ".")
        dev = root / "dev"
        yield World(
            root=root,
            hub=GitHub(root, origin, project_dir),
            dev=dev,
            project=dev / project_dir,
            server=server,
            plan_workflow=load_workflow("orqsync-plan.yml", project_dir),
            apply_workflow=load_workflow("orqsync-apply.yml", project_dir),
        )
    emulator.close()


def line_of(text: str, span: str, key: str) -> int:
    """The line of `key:` in the annotations of `span` (1-based)."""
    inside = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip() == f"span_id: {span}":
            inside = True
        elif inside and line.strip().startswith(f"{key}:"):
            return number
    raise AssertionError(f"no {key} under {span}")


def outcomes(job: Job) -> dict[str, str]:
    return {name: step.outcome for name, step in job.steps.items()}


CHECKOUT_SHA = "11bd71901bbe5b1630ceea73d27597364c9af683"  # v4.2.2
SETUP = {
    f"actions/checkout@{CHECKOUT_SHA}": "played",
    "actions/setup-python@a26af69be951a213d495a4c3e4e4022e16d87065": "played",
}
PLANNED = {
    **SETUP,
    "Validate": "success",
    "Plan": "success",
    "Upload the plan": "played",
    "Post or update the plan comment": "played",
    "Say in the comment that there is no plan": "skipped",
}
NOT_PLANNED = {
    **SETUP,
    "Validate": "failure",
    "Plan": "skipped",
    "Upload the plan": "skipped",
    "Post or update the plan comment": "skipped",
    "Say in the comment that there is no plan": "played",
}
APPLIED = {
    **SETUP,
    "Apply": "success",
    "Commit the state": "success",
    "Keep the state as an artifact": "played",
}
TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
PLAN_ID = r"[0-9a-f]{16}"


def assert_state_pushed(w: World, job: Job, applied: str) -> str:
    """The apply job committed exactly the state files on top of `applied` and pushed them."""
    prefix = w.prefix
    sha = git(w.hub.origin, "rev-parse", "main")
    assert job.steps["Commit the state"].stdout == f"Committed the state as {sha}.\n"
    assert git(w.hub.origin, "log", "-1", "--format=%P", "main") == applied
    assert (
        git(w.hub.origin, "log", "-1", "--format=%an <%ae>%n%cn <%ce>", "main") == f"{BOT}\n{BOT}"
    )
    assert git(w.hub.origin, "log", "-1", "--format=%s%n%n%b", "main") == (
        f"orqsync: state after applying {applied} [skip ci]\n\n"
        f"Applied by {SERVER}/{REPOSITORY}/actions/runs/{job.run_id}"
    )
    assert git(w.hub.origin, "show", "--name-only", "--format=", "main").splitlines() == [
        f"{prefix}.orqsync/state.history.jsonl",
        f"{prefix}.orqsync/state.json",
    ]
    kept = job.artifacts["orqsync-state"]  # the state files, not the folder
    state_dir = job.workspace / w.rel / ".orqsync"
    assert isinstance(kept, list) and {path.parent for path in kept} == {state_dir}
    names = [path.name for path in kept]
    assert names[0] == "state.json" and names[-1] == "state.history.jsonl"
    assert set(names[1:-1]) <= {"state.json.backup", "state.json.journal", "state.json.cache"}
    committed = git(w.hub.origin, "show", f"main:{prefix}.orqsync/state.json")
    assert kept[0].read_text(encoding="utf-8") == committed + "\n"
    return sha


def files_read(w: World, job: Job) -> int:
    """How many annotation files a plan in the job's fresh checkout reads, without the plan
    cache the job's own plan left: the others are vouched for by the committed state."""
    project = load_project(str(job.workspace / w.rel))
    Path(cache_path(project)).unlink(missing_ok=True)
    return plan_command.plan(project).files_read


def first_push(w: World) -> tuple[str, str]:
    """(1) main gets the project; the apply workflow applies it and commits the state."""
    w.write("orqsync.yaml", PROJECT.format(base_url=w.server.url))
    w.write("definitions.yaml", DEFINITIONS)
    w.write(".gitignore", GITIGNORE)
    w.write("annotations/support.yaml", SUPPORT)
    for name, text in workflow_files(str(w.project)).items():  # what `init --github` writes
        w.write(name, text)
    assert (w.dev / LOCAL_ACTION / "action.yml").is_file()
    first = w.commit("Label the support traces", ALICE)
    job = w.push_main("alice")
    assert outcomes(job) == APPLIED, job.log
    assert job.installed == [f"orqsync=={__version__}"]  # the release init wrote, pinned
    assert "Apply complete: 3 requests sent." in job.steps["Apply"].stdout
    assert w.held() == w.desired()
    state_1 = assert_state_pushed(w, job, first)
    # the state the bot committed says which files it is in sync with, for the next plans
    committed = json.loads(git(w.hub.origin, "show", f"main:{w.prefix}.orqsync/state.json"))
    assert list(committed["in_sync"]["files"]) == ["annotations/support.yaml"]
    return first, state_1


def relabel_pull_request(w: World) -> int:
    """(2) B and C flip to bad, A loses confidence_score, D is added: validate, plan, comment;
    the emulator's request count, unchanged, is returned."""
    git(w.dev, "checkout", "-q", "-b", "relabel")
    w.write("annotations/support.yaml", relabelled(SUPPORT))
    w.write("annotations/triage.yaml", TRIAGE)
    w.commit("Relabel B and C, triage D", BOB)
    sent = w.requests()
    job, _ = w.open_pull_request("relabel", "bob")
    assert outcomes(job) == PLANNED, job.log
    validate = job.steps["Validate"].stdout.splitlines()
    assert validate[0] == "::notice title=orqsync::no problems found"
    assert not [line for line in validate if line.startswith("::error")]
    plan = job.steps["Plan"].stdout
    assert "Plan: 2 to add, 2 to change, 1 to remove; 4 requests." in plan
    assert plan.endswith("Changes pending.\n")
    assert job.installed == [f"orqsync=={__version__}"]  # once for the two steps
    outputs = job.steps["Plan"].outputs
    assert {key: outputs[key] for key in ("exit-code", "create", "update", "delete")} == {
        "exit-code": "2",
        "create": "2",
        "update": "2",
        "delete": "1",
    }
    saved = json.loads(Path(outputs["plan-file"]).read_text(encoding="utf-8"))
    assert len(saved["requests"]) == 4
    assert job.artifacts == {"orqsync-plan": Path(outputs["plan-file"])}
    (comment,) = job.comments
    assert comment == Path(outputs["comment-file"]).read_text(encoding="utf-8") == job.summary
    assert comment.startswith(
        f"{MARKER}\n## orqsync plan\n\n**2 to add, 2 to change, 1 to remove** on 4 spans."
    )
    assert (
        "| `rating` | *labelled spans* | 3 | 3 | 0 |\n"
        "| | `bad` | 0 | 2 | +2 |\n"
        "| | `good` | 3 | 1 | -2 |\n"
    ) in comment
    edited = w.read("annotations/support.yaml")
    for span in (B, C):
        line = line_of(edited, span, "rating")
        assert f'@@ span {TRACE}/{span}, line {line} @@\n- rating = "good"\n+ rating = "bad"\n' in (
            comment
        )
    assert w.requests() == sent  # validate and plan send nothing (and have no key)
    return sent


def typo_pull_request(w: World) -> None:
    """(2) a value orq.ai would refuse fails validate at its file, line and column."""
    support = f"{w.prefix}annotations/support.yaml"
    sent = w.requests()
    git(w.dev, "checkout", "-q", "-b", "typo", "main")
    typo = SUPPORT.replace(
        f"{B}\n    annotations:\n      rating: good", f"{B}\n    annotations:\n      rating: great"
    )
    assert typo.splitlines()[12] == "      rating: great"  # line 13, the value at column 15
    w.write("annotations/support.yaml", typo)
    w.commit("Rate B great", BOB)
    job, head = w.open_pull_request("typo", "bob")
    assert outcomes(job) == NOT_PLANNED, job.log
    assert job.steps["Validate"].returncode == 1
    assert job.steps["Validate"].stdout.splitlines() == [
        f'::error file={support},line=13,col=15,title=orqsync::Invalid value "great" for '
        '"rating". Valid options are: good, bad (hint: use one of the options, or add it to '
        "definitions.yaml after adding it in orq.ai)",
        "::error title=orqsync::1 problem found; nothing was sent",
    ]
    assert job.comments == [
        f"{MARKER}\n**orqsync could not plan {head}**: the problems are\non the files of this "
        f"pull request and in [the run's log]({SERVER}/{REPOSITORY}/actions/runs/{job.run_id}).\n"
    ]
    assert "Plan" not in job.steps or job.steps["Plan"].outputs == {}
    assert not (job.workspace.parent / "_temp" / "orqsync" / "plan.json").exists()
    assert job.artifacts == {}
    assert w.requests() == sent


def merge_relabel(w: World, sent: int) -> tuple[str, str, str]:
    """(3) the merge is applied; the state is committed back and pushed."""
    merged = w.merge("relabel", CAROL)
    job = w.push_main("carol")
    assert outcomes(job) == APPLIED, job.log
    assert "Apply complete: 4 requests sent." in job.steps["Apply"].stdout
    assert w.held() == w.desired()
    assert (TRACE, A, "confidence_score") not in w.held()
    assert w.sent_since(sent) == sorted(
        [("DELETE", A, 200), ("POST", B, 200), ("POST", C, 200), ("POST", D, 200)]
    )
    state_2 = assert_state_pushed(w, job, merged)
    apply_2 = job.run_id
    return merged, state_2, apply_2


def blame_after_pull(
    w: World, first: str, state_1: str, merged: str, state_2: str, apply_2: str
) -> None:
    """(4) in a developer's clone after a pull: the merge commit decided B's rating."""
    assert w.pull() == state_2
    done = w.orqsync("state", "blame", f"{TRACE}/{B}", "rating")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 4
    assert lines[0] == f"{TRACE}/{B}"
    assert re.fullmatch(
        rf'rating = "bad"  by carol in commit {merged[:7]} \(apply plan {PLAN_ID}, {TIME}\), '
        rf'was "good" \(by alice, commit {first[:7]}\)',
        lines[1],
    ), lines[1]
    assert re.fullmatch(
        rf'    {TIME}  "bad"  carol  commit {merged[:7]}  apply plan {PLAN_ID}  '
        rf"run {SERVER}/{REPOSITORY}/actions/runs/{apply_2}  "
        rf"metadata \{{reviewerId: alice, source: orqsync\}}  "
        rf"\(state commit {state_2[:7]}, serial 2\)",
        lines[2],
    ), lines[2]
    assert lines[3].endswith(f"(state commit {state_1[:7]}, serial 1)")
    assert f'  "good"  alice  commit {first[:7]}  ' in lines[3]
    done = w.orqsync("state", "blame", f"{TRACE}/{B}", "rating", "--format", "json")
    versions = json.loads(done.stdout)["keys"]["rating"]
    assert [
        (v["value"], v["provenance"]["commit"], v["provenance"]["author"], v["state_commit"])
        for v in versions
    ] == [
        (
            "bad",
            merged,
            "carol",
            {"sha": state_2, "author": BOT, "date": versions[0]["state_commit"]["date"]},
        ),
        (
            "good",
            first,
            "alice",
            {"sha": state_1, "author": BOT, "date": versions[1]["state_commit"]["date"]},
        ),
    ]
    done = w.orqsync("state", "blame", f"{TRACE}/{A}", "confidence_score")
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(
        rf"confidence_score: removed in state commit {state_2[:7]} \({TIME}, {re.escape(BOT)}\), "
        rf"was 0\.9 \(by alice, commit {first[:7]}\)",
        done.stdout.splitlines()[1],
    ), done.stdout


def export_twice(w: World, merged: str, state_2: str) -> bytes:
    """(5) the same commit gives the same bytes, and the manifest names the state commit."""
    exported = w.export()
    assert w.export() == exported
    head, _, body = exported.partition(b"\n")
    manifest = json.loads(head)["manifest"]
    assert manifest["commit"] == state_2
    assert manifest["dirty"] is False
    assert (manifest["rows"], manifest["state_serial"]) == (4, 2)
    assert manifest["content_sha256"] == hashlib.sha256(body).hexdigest()
    rows = [json.loads(line) for line in body.splitlines()]
    assert {
        (row["trace_id"], row["span_id"], key): canonical(value)
        for row in rows
        for key, value in row["annotations"].items()
    } == w.desired()
    (row_b,) = [row for row in rows if row["span_id"] == B]
    assert row_b["provenance"]["rating"]["commit"] == merged
    return exported


def key_only_in_apply(w: World) -> None:
    """The key went to the Apply steps only, and was never printed or committed."""
    for ran in w.hub.jobs:
        given = [s.name for s in ran.steps.values() if KEY in s.env.values()]
        assert given == (["Apply"] if "Apply" in ran.steps else [])
        assert KEY not in ran.log
    assert KEY not in git(w.hub.origin, "log", "-p", "--all")


def first_five_steps(w: World) -> tuple[str, bytes]:
    """(1)-(5): the first push, the relabel and typo pull requests, the merge and its apply,
    blame, export. The state commit after the merge, and its export."""
    first, state_1 = first_push(w)
    sent = relabel_pull_request(w)
    typo_pull_request(w)
    merged, state_2, apply_2 = merge_relabel(w, sent)
    blame_after_pull(w, first, state_1, merged, state_2, apply_2)
    return state_2, export_twice(w, merged, state_2)


def test_pull_request_then_merge_on_the_example_workflows(world):
    w = world
    state_2, exported = first_five_steps(w)

    # (6) a pull request that changes no label plans nothing; merged, its apply commits nothing
    git(w.dev, "checkout", "-q", "-b", "docs", "main")
    (w.dev / "README.md").write_text("# Labels of the support traces\n", encoding="utf-8")
    w.commit("Describe the repository", ALICE)
    job, _ = w.open_pull_request("docs", "alice")
    assert outcomes(job) == PLANNED, job.log
    assert job.steps["Plan"].stdout.endswith("No changes.\n")
    assert files_read(w, job) == 0  # both files are as the last apply left them
    assert job.comments == [f"{MARKER}\n## orqsync plan\n\n{NO_CHANGES}\n"]
    docs = w.merge("docs", CAROL)
    sent = w.requests()
    job = w.push_main("carol")
    assert outcomes(job) == APPLIED, job.log
    assert job.steps["Commit the state"].stdout == "The state did not change; nothing to commit.\n"
    assert git(w.hub.origin, "rev-parse", "main") == docs
    assert w.requests() == sent

    # a later pull request, merged and applied: export --at the earlier commit is unchanged
    git(w.dev, "checkout", "-q", "-b", "recheck", "main")
    text = w.read("annotations/support.yaml")
    assert text.count("rating: good") == 1  # A's
    w.write(
        "annotations/support.yaml",
        text.replace("rating: good", "rating: bad") + "      confidence_score: 0.4\n",
    )
    w.commit("Recheck A, score C", ALICE)
    job, _ = w.open_pull_request("recheck", "alice")
    assert outcomes(job) == PLANNED, job.log
    assert "| | `bad` | 2 | 3 | +1 |\n| | `good` | 1 | 0 | -1 |\n" in job.comments[0]
    assert files_read(w, job) == 1  # support.yaml; triage.yaml is vouched for by the state
    recheck = w.merge("recheck", ALICE)
    job = w.push_main("alice")
    assert outcomes(job) == APPLIED, job.log
    assert w.held() == w.desired()
    state_3 = assert_state_pushed(w, job, recheck)
    assert w.pull() == state_3
    now = w.export()
    assert json.loads(now.partition(b"\n")[0])["manifest"]["commit"] == state_3
    assert now != exported
    assert w.export("--at", state_2) == exported
    assert w.export("--at", state_2[:10]) == exported

    # after apply, the plan has nothing to do
    done = w.orqsync("plan", "--detailed-exitcode")
    assert done.returncode == 0, done.stdout + done.stderr

    key_only_in_apply(w)


@pytest.mark.parametrize("world", ["labels/prod"], indirect=True)
def test_the_same_in_a_project_in_a_subfolder_of_the_repository(world):
    first_five_steps(world)
    key_only_in_apply(world)


def test_the_nightly_reassertion_restores_a_label_edited_in_orq_ai(world):
    """The reassert workflow's own steps, on a schedule: a UI edit is undone, the labels keep
    who decided them, and the state with the assertion times is committed back."""
    w = world
    w.reassert_workflow = load_workflow("orqsync-reassert.yml", w.rel)
    _, state_1 = first_push(w)
    desired = w.desired()
    (trace_id, span_id, key), value = next(
        (label, value) for label, value in sorted(desired.items()) if label[2] == "rating"
    )
    edit = {"annotations": [{"key": key, "value": "bad" if value != "bad" else "good"}]}
    answer = httpx.post(
        f"{w.server.url}/v2/traces/{trace_id}/spans/{span_id}/annotation",
        json=edit,
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert answer.status_code == 200
    assert w.held() != desired
    job = w.hub.play(
        w.reassert_workflow,
        {"event_name": "schedule", "ref": "refs/heads/main", "sha": state_1, "actor": "cron"},
        {"ORQ_API_KEY": KEY},
    )
    assert outcomes(job) == {**SETUP, "Reassert": "success", "Commit the state": "success"}, job.log
    assert "Reassertion: 3 spans" in job.steps["Reassert"].stdout
    assert w.held() == desired
    pushed = json.loads(git(w.hub.origin, "show", f"main:{w.prefix}.orqsync/state.json"))
    before = json.loads(git(w.hub.origin, "show", f"{state_1}:{w.prefix}.orqsync/state.json"))
    assert pushed["provenance"] == before["provenance"]
    assert all(re.fullmatch(TIME, line["asserted"]) for line in pushed["spans"])
    assert "in_sync" in pushed  # the next plans still skip the files in sync
    assert git(w.hub.origin, "log", "-1", "--format=%s", "main") == (
        "orqsync: state after a reassertion [skip ci]"
    )
