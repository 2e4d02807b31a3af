"""Scenario 8a alone, for two builds of orqsync in turns: how many of its requests each
answered 429 run after run, when one run of bench/run.py cannot tell a change from noise.

    python bench/limited.py OLD/.venv/bin/orqsync NEW/.venv/bin/orqsync [--pairs N]

Each pair serves a fresh emulator with a token bucket of 1,200 requests a minute and a burst
of 20 for each build (old first, then new) and applies 1,500 single-request spans to it, as
bench/pacing.py's 8a does; it prints each run's wall time and answers.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import pacing  # bench/pacing.py: the script's own folder is on the path

KEY = "bench-limited-key"


def one(orqsync: str, work: Path) -> tuple[float, dict[str, int]]:
    definitions = work / "definitions.yaml"
    definitions.write_text(pacing.DEFINITIONS, encoding="utf-8")
    flags = ("--rate-limit", "1200", "--rate-limit-burst", "20")
    with pacing.serve([orqsync], KEY, definitions, work / "emulator.log", *flags) as served:
        project = pacing.write_project(work / "project", served.url, 1500)
        started = time.monotonic()
        subprocess.run(
            [orqsync, "-C", str(project), "apply", "--auto-approve"],
            env={**os.environ, pacing.KEY_ENV: KEY},
            capture_output=True,
            check=False,
        )
        return time.monotonic() - started, served.statuses()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="the old build's orqsync executable")
    parser.add_argument("new", help="the new build's orqsync executable")
    parser.add_argument("--pairs", type=int, default=4, help="runs of each build (default 4)")
    args = parser.parse_args()
    for number in range(args.pairs):
        for name, orqsync in (("old", args.old), ("new", args.new)):
            with tempfile.TemporaryDirectory(prefix="orqsync-limited-") as folder:
                seconds, statuses = one(orqsync, Path(folder))
            print(f"pair {number + 1} {name}: {seconds:.1f} s, answers {statuses}", flush=True)


if __name__ == "__main__":
    main()
