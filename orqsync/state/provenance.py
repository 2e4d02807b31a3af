"""Who and which commit an apply comes from: flags first, then CI variables, then git."""

from __future__ import annotations

import datetime
import getpass
import hashlib
import os
import subprocess
from collections.abc import Iterable, Mapping

from orqsync.state.model import Provenance


def _git(root: str, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", root, *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def ci_run_url(environ: Mapping[str, str]) -> str:
    """The URL of the CI run this process belongs to, when the CI says."""
    if environ.get("GITHUB_RUN_ID") and environ.get("GITHUB_REPOSITORY"):
        server = environ.get("GITHUB_SERVER_URL", "https://github.com")
        return f"{server}/{environ['GITHUB_REPOSITORY']}/actions/runs/{environ['GITHUB_RUN_ID']}"
    return environ.get("CI_JOB_URL", "")


def operator(root: str, environ: Mapping[str, str] | None = None) -> str:
    """Who runs this command: the CI's actor, else git's user.name <user.email>, else the
    login name."""
    env = os.environ if environ is None else environ
    if env.get("GITHUB_ACTOR"):
        return env["GITHUB_ACTOR"]
    name, email = _git(root, "config", "user.name"), _git(root, "config", "user.email")
    if name:
        return f"{name} <{email}>" if email else name
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return ""


def uncommitted(root: str, paths: Iterable[str]) -> dict[str, str]:
    """Of `paths` (relative to `root`), those whose content differs from git's HEAD, or that
    git does not track, with the sha256 of their content; {} outside a git repository."""
    if not _git(root, "rev-parse", "--is-inside-work-tree"):
        return {}
    wanted = set(paths)
    changed = _git(root, "diff", "--name-only", "--relative", "-z", "HEAD", "--", ".")
    untracked = _git(root, "ls-files", "--others", "--exclude-standard", "-z", "--", ".")
    found = {}
    for name in sorted(set((changed + "\0" + untracked).split("\0")) & wanted):
        try:
            with open(os.path.join(root, name), "rb") as handle:
                found[name] = hashlib.sha256(handle.read()).hexdigest()
        except OSError:
            found[name] = "deleted"
    return found


def content_id(files: Mapping[str, str]) -> str:
    """One sha256 for files and their content hashes (as `uncommitted` gives them)."""
    text = "".join(f"{name}\0{digest}\n" for name, digest in sorted(files.items()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def capture(
    root: str,
    plan_id: str,
    environ: Mapping[str, str] | None = None,
    *,
    commit: str = "",
    author: str = "",
    now: datetime.datetime | None = None,
    changed: Mapping[str, str] | None = None,
) -> Provenance:
    """Who and which commit an apply comes from; `changed` (from `uncommitted`) are the
    applied files that commit does not hold."""
    env = os.environ if environ is None else environ
    commit = commit or env.get("GITHUB_SHA", "") or _git(root, "rev-parse", "HEAD")
    if not author:
        author = env.get("GITHUB_ACTOR", "") or _git(root, "log", "-1", "--format=%an <%ae>")
    if not author:
        try:
            author = getpass.getuser()
        except (OSError, KeyError):
            author = ""
    run_url = ci_run_url(env)
    moment = now or datetime.datetime.now(datetime.timezone.utc)
    return Provenance(
        commit=commit,
        author=author,
        applied_at=moment.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        plan_id=plan_id,
        run_url=run_url,
        uncommitted=content_id(changed) if changed else "",
    )
