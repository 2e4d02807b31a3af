"""GitHub Actions: problems as workflow commands, so they show inline on a pull request's files.

The escaping is the Actions toolkit's (actions/toolkit, packages/core/src/command.ts,
`escapeData` and `escapeProperty`): the runner decodes `%25`, `%0D` and `%0A` in a command's
message, and also `%3A` and `%2C` in its properties, where `:` and `,` are separators.
"""

from __future__ import annotations

import os
import posixpath
import subprocess
from collections.abc import Mapping

from orqsync.errors import Problem
from orqsync.text import plural

__all__ = ["escape_data", "escape_property", "problems_github", "project_prefix"]

TITLE = "orqsync"


def escape_data(text: str) -> str:
    """A workflow command's message, escaped (`%` first, so nothing is escaped twice)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value, escaped: the message escapes plus `:` and `,`."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _command(level: str, message: str, properties: list[tuple[str, str]]) -> str:
    props = ",".join(f"{name}={escape_property(value)}" for name, value in properties)
    return f"::{level}{' ' + props if props else ''}::{escape_data(message)}"


def _repository_path(path: str, prefix: str) -> str:
    """`path` (relative to the project) as GitHub wants it: relative to the repository root."""
    path = path.replace(os.sep, "/")
    if posixpath.isabs(path) or not prefix:
        return path
    return posixpath.normpath(posixpath.join(prefix.replace(os.sep, "/"), path))


# GitHub shows at most 10 error and 10 warning annotations of a step (and 50 of a job); more
# are dropped. The summary takes one error slot; no file takes more than PER_FILE.
PER_LEVEL = 10
PER_FILE = 5


def problems_github(problems: list[Problem], prefix: str = "") -> str:
    """Problems as workflow commands: `::error`/`::warning` annotations on their files, lines
    and columns, then a summary line.

    One problem repeated in many places (the same message and hint: a systematic typo) is one
    annotation that says how many more there are. Annotations are capped as GitHub caps them
    (PER_LEVEL a step, PER_FILE a file here); everything, capped or not, is also listed in a
    collapsible log group, one plain line each. `prefix` is the project directory relative to
    the repository root ("" or "." at the root). The summary is an `::error` when there are
    errors and a `::notice` when there are none.
    """
    groups: dict[tuple[str, str, str], list[Problem]] = {}
    for problem in sorted(problems, key=Problem.sort_key):
        groups.setdefault((problem.severity, problem.message, problem.hint), []).append(problem)
    errors = sum(1 for problem in problems if problem.severity != "warning")
    room = {"error": PER_LEVEL - 1 if errors else PER_LEVEL, "warning": PER_LEVEL}
    per_file: dict[str, int] = {}
    lines = []
    for (severity, message, hint), group in groups.items():
        level = "warning" if severity == "warning" else "error"
        first = group[0]
        if room[level] == 0 or per_file.get(first.path, 0) == PER_FILE:
            continue
        room[level] -= 1
        per_file[first.path] = per_file.get(first.path, 0) + 1
        text = message + (f" (hint: {hint})" if hint else "")
        if len(group) > 1:
            text += f" [and {len(group) - 1:,} more places like it: see the log]"
        lines.append(_command(level, text, _place(first, prefix)))
    shown = len(lines)
    if shown < len(problems):
        lines.append(f"::group::{TITLE}: all {len(problems):,} problems")
        # indented, so that no line of a user's file can start a workflow command
        lines.extend("  " + escape_data(p.render()) for p in sorted(problems, key=Problem.sort_key))
        lines.append("::endgroup::")
    if errors:
        summary = f"{plural(errors, 'problem', grouped=False)} found; nothing was sent"
        lines.append(_command("error", summary, [("title", TITLE)]))
    else:
        found = plural(len(problems), "warning", grouped=False) if problems else ""
        lines.append(
            _command(
                "notice", "no problems found" + (f" ({found})" if found else ""), [("title", TITLE)]
            )
        )
    return "\n".join(lines) + "\n"


def _place(problem: Problem, prefix: str) -> list[tuple[str, str]]:
    properties = [("file", _repository_path(problem.path, prefix))]
    if problem.line is not None:
        properties.append(("line", str(problem.line)))
        if problem.column is not None:
            properties.append(("col", str(problem.column)))
    properties.append(("title", TITLE))
    return properties


def project_prefix(directory: str, environ: Mapping[str, str] | None = None) -> str:
    """The project directory relative to the root of its git repository ("" at the root).

    Asks git first; when git cannot say (not installed, or a checkout git refuses as owned by
    another user), falls back to `GITHUB_WORKSPACE`, the root of the checkout in Actions.
    """
    env = os.environ if environ is None else environ
    try:
        done = subprocess.run(
            ["git", "-C", directory, "rev-parse", "--show-prefix"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        done = None
    if done is not None and done.returncode == 0:
        return done.stdout.strip().rstrip("/")
    workspace = env.get("GITHUB_WORKSPACE", "")
    if not workspace:
        return ""
    relative = os.path.relpath(os.path.realpath(directory), os.path.realpath(workspace))
    if relative == "." or relative.startswith(".."):
        return ""
    return relative.replace(os.sep, "/")
