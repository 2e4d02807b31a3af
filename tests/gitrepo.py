"""A throwaway git repository for the tests that read the state's history from git.

git runs with no global or system configuration, and with the author given per call, so the
tests neither read nor touch the developer's own settings.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ALICE = ("Alice", "alice@example.com")
BOB = ("Bob", "bob@example.com")

IGNORE = """\
.orqsync/*.journal
.orqsync/*.lock
.orqsync/*.backup
.orqsync/emulator.db*
"""


def isolate(monkeypatch) -> None:
    """git in this test (the CLI's included) reads no global or system configuration."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(name, raising=False)


def git(root: Path, *args: str, author: tuple[str, str] = ALICE) -> str:
    name, email = author
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    done = subprocess.run(
        ["git", "-C", str(root), "-c", "commit.gpgsign=false", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def init(root: Path) -> None:
    git(root, "init", "-q", "-b", "main")
    (root / ".gitignore").write_text(IGNORE, encoding="utf-8")


def commit(root: Path, message: str, author: tuple[str, str] = ALICE) -> str:
    """Commit everything (the ignored files left out); the new commit's full sha."""
    git(root, "add", "-A", author=author)
    git(root, "commit", "-q", "-m", message, author=author)
    return git(root, "rev-parse", "HEAD")


BOT = ("orqsync-bot", "bot@example.com")


def apply_and_commit(project) -> str:
    """`orqsync apply` in the project (it must succeed), then the state committed by the
    bot, as the apply workflow does; the state commit's sha."""
    result = project.run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    return commit(project.root, "orqsync apply", BOT)
