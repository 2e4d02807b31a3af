"""The shipped examples stay valid: each applies against the emulator and then plans empty."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from orqsync.cli import cli
from orqsync.review.render import NO_CHANGES

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.mark.parametrize(
    "name", ["quickstart", "support-evals", "judge-alignment", "review-queues", "three-reviewers"]
)
def test_example_applies_and_then_plans_no_changes(tmp_path, name):
    root = tmp_path / name
    shutil.copytree(EXAMPLES / name, root, ignore=shutil.ignore_patterns(".orqsync"))
    config = root / "orqsync.yaml"
    # no pacing in tests: the example's fixed rate would only make the test wait
    config.write_text(
        config.read_text().replace("requests_per_minute: 100", "requests_per_minute: null")
    )
    runner = CliRunner()
    applied = runner.invoke(cli, ["-C", str(root), "apply", "--auto-approve"])
    assert applied.exit_code == 0, applied.output
    assert "Apply complete" in applied.stdout
    planned = runner.invoke(cli, ["-C", str(root), "plan", "--detailed-exitcode"])
    assert planned.exit_code == 0
    # (a project with reviews lists the keys its reviewers leave open after that)
    assert planned.stdout.split("Not resolved, so not applied")[0] == NO_CHANGES + "\n"
