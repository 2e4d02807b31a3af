"""Shared fixtures: a project on disk and the CLI run in process, as a user would type it."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import settings

from orqsync.cli import cli
from orqsync.commands.init import DEFINITIONS

# In CI (CI=true) every property test draws the same examples on every run, so a red build is the
# change's doing, not the draw's. Elsewhere, and with HYPOTHESIS_PROFILE=default (the scheduled
# dependency workflow), each run explores new examples.
settings.register_profile("ci", derandomize=True, database=None)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "default")
)

# Tests name spans t1/s1 for reading's sake: any path-safe id. The OpenTelemetry form that
# projects check by default is tested where it is the subject (test_ids.py, tests/corpus/).
PROJECT = """\
version: 1
workspace: test
id_format: any
api:
  base_url: {base_url}
  parallelism: 4
definitions: definitions.yaml
sources: ["annotations/**/*.yaml"]
state: .orqsync/state.json
metadata: {{source: orqsync}}
"""


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Project:
    """A throwaway orqsync project; `write` adds files, `run` runs the CLI in it."""

    root: Path

    def write(self, relative: str, text: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    def run(
        self, *args: str, env: dict[str, str] | None = None, input: str | None = None
    ) -> Result:
        runner = CliRunner()
        result = runner.invoke(
            cli, ["-C", str(self.root), *args], env=env, input=input, catch_exceptions=False
        )
        return Result(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., Project]:
    """A project with the standard definitions; `base_url` defaults to the embedded emulator."""

    def make(base_url: str = "embedded", definitions: str = DEFINITIONS, **files: str) -> Project:
        project = Project(tmp_path)
        project.write("orqsync.yaml", PROJECT.format(base_url=base_url))
        project.write("definitions.yaml", definitions)
        for name, text in files.items():
            project.write(name.replace("__", "/") if "/" not in name else name, text)
        return project

    return make


@pytest.fixture(autouse=True)
def _no_real_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may pick up a developer's real key."""
    monkeypatch.delenv("ORQ_API_KEY", raising=False)
    for name in ("GITHUB_SHA", "GITHUB_ACTOR", "GITHUB_RUN_ID", "GITHUB_REPOSITORY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")  # no machine-wide git settings
