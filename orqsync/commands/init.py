"""`orqsync init`: the files of a new project."""

from __future__ import annotations

import json
import os
import re
import shlex
from importlib import resources

from orqsync import __version__
from orqsync.errors import OrqsyncError
from orqsync.review.github import project_prefix
from orqsync.source.project import PROJECT_FILE, load_project, nearest_project

PROJECT = """\
version: 1
workspace: my-workspace
api:
  base_url: {base_url}  # "embedded" runs the built-in emulator (no key, nothing sent to orq.ai)
  api_key_env: ORQ_API_KEY         # the key comes only from the environment
  string_limit: 200
  metadata_style: documented       # documented: identityId/source/reviewerId; current: identity_id
  parallelism: 8
  requests_per_minute: null        # null: adapt to 429s; a number: never exceed it
definitions: definitions.yaml
sources: ["annotations/**/*.yaml"]
state: .orqsync/state.json
metadata: {{source: orqsync}}
policy:
  max_removals: 100                # apply refuses more unless --allow-removals
  owned_keys: ["*"]                # keys this repository manages; others are never touched
"""

DEFINITIONS = """\
# The Human Review definitions of your orq.ai workspace, pinned here (there is no API to read
# them). Keep them in step with orq.ai: a key orq.ai does not know is refused with a 404.
version: 1
definitions:
  rating:           {type: single_select, options: [good, bad]}
  defects:          {type: multi_select, options: [grammatical, spelling, hallucination, ambiguity]}
  confidence_score: {type: range, min: 0, max: 1}
  correction:       {type: text}
  approved:         {type: boolean}
"""

EXAMPLE = """\
version: 1
metadata: {reviewerId: alice}
spans:
  - trace_id: cb2289e8eae4e587f8bba591734cc831
    span_id: 274c568b4fffdfc5
    annotations:
      rating: good
      defects: [grammatical, spelling]
      confidence_score: 0.95
      correction: The answer should emphasize scalability and fault tolerance.
      approved: true
"""

GITIGNORE = """\
# orqsync: the state file is committed; these are not
.orqsync/*.journal
.orqsync/*.lock
.orqsync/*.backup
.orqsync/*.cache
.orqsync/emulator.db*
"""


WORKFLOWS = ("orqsync-plan.yml", "orqsync-apply.yml", "orqsync-reassert.yml")
# The composite action (action.yml at the root of orqsync's repository), which the workflows
# use as `uses: ./.github/actions/orqsync`: in the repository itself, it needs no published
# owner to name, and it is the release that wrote the workflows.
ACTION = "action.yml"
ACTION_DIR = os.path.join(".github", "actions", "orqsync")
DEPENDABOT = "dependabot.yml"
PROJECT_DIR_LINE = "  ORQSYNC_DIR: .\n"
STATE_LINES = "  ORQSYNC_STATE_DIR: .orqsync\n  ORQSYNC_STATE_FILE: state.json\n"
# The examples install a pinned release; init writes the one that runs it.
PACKAGE_LINE = re.compile(r'^  ORQSYNC_PACKAGE: "orqsync==[^"]*"$', re.MULTILINE)


def read_workflow(name: str) -> str:
    """A workflow of examples/github, shipped in the package as `orqsync.workflows`."""
    return resources.files("orqsync.workflows").joinpath(name).read_text("utf-8")


def workflow_files(directory: str, state: str = ".orqsync/state.json") -> dict[str, str]:
    """The GitHub workflows and the action they use, by path relative to `directory`.

    They go to `.github/workflows/` and `.github/actions/orqsync/` at the root of the git
    repository holding `directory`; when the project is in a subfolder of it, the workflows'
    ORQSYNC_DIR names that subfolder, and their state variables name `state` (orqsync.yaml's).
    """
    prefix = project_prefix(directory)
    up = os.path.join(*[os.pardir] * len(prefix.split("/"))) if prefix else ""
    state_dir, state_file = os.path.split(os.path.normpath(state))
    state_lines = (
        f"  ORQSYNC_STATE_DIR: {yaml_scalar(state_dir or '.')}\n"
        f"  ORQSYNC_STATE_FILE: {yaml_scalar(state_file)}\n"
    )
    files = {}
    for name in WORKFLOWS:
        text = read_workflow(name)
        if prefix:
            # the examples say `ORQSYNC_DIR: .` exactly once (tests/test_github.py holds that)
            text = text.replace(PROJECT_DIR_LINE, f"  ORQSYNC_DIR: {yaml_scalar(prefix)}\n", 1)
        text = text.replace(STATE_LINES, state_lines, 1)
        text = PACKAGE_LINE.sub(f'  ORQSYNC_PACKAGE: "orqsync=={__version__}"', text, count=1)
        files[os.path.join(up, ".github", "workflows", name)] = text
    files[os.path.join(up, ACTION_DIR, ACTION)] = read_workflow(ACTION)
    dependabot = os.path.join(up, ".github", DEPENDABOT)
    if not os.path.exists(os.path.join(directory, dependabot)):  # a repository's own stays
        files[dependabot] = read_workflow(DEPENDABOT)
    return files


def refuse_inside_a_project(directory: str) -> None:
    """`init --github` in a folder of a project (not its own folder) would make a second
    project there, whose files the first reads as annotation files: say where to run it."""
    folder = nearest_project(os.path.dirname(os.path.abspath(directory)))
    if folder is not None:
        raise OrqsyncError(
            f"{directory} is inside the project of {os.path.join(folder, PROJECT_FILE)}: "
            "a new project here would be read as that project's files",
            f"to add the GitHub files to that project, run `orqsync -C "
            f"{shlex.quote(os.path.relpath(folder))} init --github`",
        )


# Written plain: a path of letters, digits and ._/- that starts with a letter, _ or a dot
# and a letter (".5" and "1e3" are numbers to YAML 1.2, which GitHub reads); else quoted.
PLAIN = re.compile(r"\.|\.?[A-Za-z_][A-Za-z0-9_./-]*")
KEYWORDS = {"true", "false", "yes", "no", "on", "off", "y", "n", "null", ".inf", ".nan"}


def yaml_scalar(text: str) -> str:
    """`text` as a YAML value that YAML 1.1 and 1.2 read back as that string: plain when it
    is a plain path, else quoted (a # would start a comment, `a: b` is a mapping, yes a
    boolean, 'q an unclosed quote, 1e3 a number)."""
    if PLAIN.fullmatch(text) and text.lower() not in KEYWORDS:
        return text
    return json.dumps(text, ensure_ascii=False)


def project_state(directory: str) -> str:
    """The `state:` of the project in `directory`, relative to it; its problems, if any, are
    reported (with file, line and column) before anything is written."""
    settings = load_project(directory)
    state = os.path.relpath(settings.state_path, settings.root)
    if state.startswith(os.pardir) or os.path.isabs(state):
        raise OrqsyncError(
            f"{PROJECT_FILE}'s state: {settings.state} is outside the project folder, where "
            "the workflows cannot commit it",
            "put the state file inside the project folder, or write the workflows by hand",
        )
    return state


class Written(list[str]):
    """The paths `write_scaffold` wrote, in order. `gitignore_added`: the lines it added to a
    .gitignore that was there already ([] when it had them all); None when it wrote a new one."""

    gitignore_added: list[str] | None = None
    github_only = False  # the project was there: only the GitHub files were written


def gitignore_lines() -> list[str]:
    """The lines of GITIGNORE that do something (its comment aside)."""
    return [line for line in GITIGNORE.splitlines() if line and not line.startswith("#")]


def merge_gitignore(path: str) -> list[str]:
    """Add to the .gitignore at `path` the lines of GITIGNORE it lacks, after a comment line,
    and return them; the lines already there stay as they are, in their order."""
    with open(path, "rb") as handle:
        text = handle.read()
    present = {line.rstrip() for line in text.splitlines()}  # git ignores trailing spaces
    missing = [line for line in gitignore_lines() if line.encode("utf-8") not in present]
    if missing:
        newline = b"\r\n" if b"\r\n" in text else b"\n"
        block = [GITIGNORE.splitlines()[0], *missing]
        lead = newline if text and not text.endswith(b"\n") else b""
        with open(path, "ab") as handle:
            handle.write(lead + b"".join(line.encode("utf-8") + newline for line in block))
    return missing


def write_scaffold(
    directory: str, *, embedded: bool = False, force: bool = False, github: bool = False
) -> Written:
    """Write the starter files (with `github`, the CI workflows too); overwrite only if `force`.

    In a project that is there already (an orqsync.yaml), `github` writes the GitHub files
    only, for its state file: the project's own files are never touched.
    A .gitignore that exists is never refused nor overwritten: the lines it lacks are added.
    """
    base_url = "embedded" if embedded else "https://api.orq.ai"
    project_there = github and os.path.isfile(os.path.join(directory, PROJECT_FILE))
    if project_there:
        files = workflow_files(directory, project_state(directory))
    else:
        files = {
            PROJECT_FILE: PROJECT.format(base_url=base_url),
            "definitions.yaml": DEFINITIONS,
            os.path.join("annotations", "example.yaml"): EXAMPLE,
        }
        if github:
            refuse_inside_a_project(directory)
            os.makedirs(directory, exist_ok=True)  # so that git can tell which repository holds it
            files.update(workflow_files(directory))
    written = Written()
    written.github_only = project_there
    existing = [name for name in files if os.path.exists(os.path.join(directory, name))]
    if existing and not force:
        raise OrqsyncError(
            f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''} "
            f"in {directory}",
            "pass --force to overwrite them",
        )
    gitignore = os.path.join(directory, ".gitignore")
    merge = os.path.exists(gitignore) and not project_there
    if not project_there and not merge:
        files[".gitignore"] = GITIGNORE
    try:
        for name, text in files.items():
            path = os.path.join(directory, name)
            if name.startswith(os.pardir):  # a workflow at the root of the repository
                path = os.path.normpath(path)
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
            written.append(path)
        if merge:
            written.gitignore_added = merge_gitignore(gitignore)
            if written.gitignore_added:
                written.append(gitignore)
    except OSError as exc:
        raise OrqsyncError(
            f"cannot write {exc.filename or directory}: {exc.strerror or exc}",
            "check that the folder is writable and that the path is not a folder",
        ) from None
    return written
