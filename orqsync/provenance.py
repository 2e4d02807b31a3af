"""Who and which commit an apply comes from: flags first, then CI variables, then git."""

from __future__ import annotations

import datetime
import getpass
import os
import subprocess
from collections.abc import Mapping

from orqsync.state import Provenance


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


def capture(
    root: str,
    plan_id: str,
    environ: Mapping[str, str] | None = None,
    *,
    commit: str = "",
    author: str = "",
    now: datetime.datetime | None = None,
) -> Provenance:
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
    )
