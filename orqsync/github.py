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


def problems_github(problems: list[Problem], prefix: str = "") -> str:
    """One `::error` per problem, placed at its file, line and column, then a summary line.

    `prefix` is the project directory relative to the repository root ("" or "." at the root).
    The summary is an `::error` when there are problems and a `::notice` when there are none.
    """
    lines = []
    for problem in problems:
        properties = [("file", _repository_path(problem.path, prefix))]
        if problem.line is not None:
            properties.append(("line", str(problem.line)))
            if problem.column is not None:
                properties.append(("col", str(problem.column)))
        properties.append(("title", TITLE))
        message = problem.message + (f" (hint: {problem.hint})" if problem.hint else "")
        lines.append(_command("error", message, properties))
    count = len(problems)
    if count:
        summary = f"{count} problem{'s' if count != 1 else ''} found; nothing was sent"
        lines.append(_command("error", summary, [("title", TITLE)]))
    else:
        lines.append(_command("notice", "no problems found", [("title", TITLE)]))
    return "\n".join(lines) + "\n"


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
