"""The command as a process (`python -m orqsync`, what the console script runs).

main() ends the process without freeing what a plan left (cli._exit): these tests hold that
everything printed still arrives, whole, and that exit codes and errors are those of the
command run in process.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

from conftest import Project

from orqsync.review.render import MAX_SPAN_BLOCKS


def process(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orqsync", "-C", str(project.root), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def big_file(spans: int) -> str:
    lines = ["version: 1", "spans:"]
    for number in range(spans):
        lines += [
            f"  - trace_id: {number // 3:032x}",
            f"    span_id: {number:016x}",
            "    annotations:",
            "      rating: good",
            f"      correction: Reviewed answer number {number}.",
        ]
    return "\n".join(lines) + "\n"


def test_a_plan_too_big_for_a_pipe_arrives_whole_with_its_exit_code(
    make_project: Callable[..., Project],
) -> None:
    project = make_project(**{"annotations/big.yaml": big_file(MAX_SPAN_BLOCKS + 200)})
    expected = project.run("plan", "--detailed-exitcode")
    assert expected.exit_code == 2
    assert len(expected.stdout) > 1 << 17  # more than a pipe holds: it must be flushed
    assert "more changes, not listed here" in expected.stdout

    done = process(project, "plan", "--detailed-exitcode")
    assert done.returncode == 2, done.stderr
    assert done.stdout == expected.stdout
    assert done.stderr == ""

    done = process(project, "validate")
    assert (done.returncode, done.stdout) == (0, project.run("validate").stdout)


def test_errors_and_usage_keep_their_exit_codes_and_messages(
    make_project: Callable[..., Project],
) -> None:
    project = make_project(**{"annotations/bad.yaml": "version: 1\nspans: [\n"})
    done = process(project, "plan")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == project.run("plan").stderr
    assert "annotations/bad.yaml:" in done.stderr

    done = process(project, "plan", "--no-such-flag")
    assert done.returncode == 1
    # click's own words, which its releases punctuate differently
    assert "error: No such option" in done.stderr
    assert "--no-such-flag" in done.stderr

    done = process(project, "--version")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("orqsync, version ")
