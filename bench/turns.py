"""Two builds of orqsync timed in turns on the benchmark's projects, when one run of
bench/run.py cannot tell a change from the machine's moods (BENCHMARKS.md).

    python bench/turns.py OLD/.venv/bin/orqsync NEW/.venv/bin/orqsync [--runs N]

Each command runs old then new, then new then old, and so on; the medians are printed. It
needs the projects a run of bench/run.py left in its work directory (the default one, or
--workdir).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="the old build's orqsync executable")
    parser.add_argument("new", help="the new build's orqsync executable")
    parser.add_argument("--runs", type=int, default=7, help="runs of each command (default 7)")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "orqsync-bench"))
    args = parser.parse_args()
    projects = os.path.join(args.workdir, "projects-100x1000x4-seed1")
    if not os.path.isdir(projects):
        parser.error(f"{projects} is missing: run bench/run.py first")
    cases = [
        ("--version", ["--version"]),
        ("full plan (1)", ["-C", os.path.join(projects, "full"), "plan"]),
        ("pull-request plan (2)", ["-C", os.path.join(projects, "pull-request"), "plan"]),
        ("validate (3)", ["-C", os.path.join(projects, "validate"), "validate"]),
    ]
    builds = [("old", args.old), ("new", args.new)]
    for name, argv in cases:
        times: dict[str, list[float]] = {label: [] for label, _ in builds}
        for run in range(args.runs):
            for label, executable in builds if run % 2 == 0 else builds[::-1]:
                started = time.perf_counter()
                done = subprocess.run(
                    [executable, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
                )
                times[label].append(time.perf_counter() - started)
                if done.returncode not in (0, 2):
                    raise SystemExit(f"{label} {name} failed: {done.stderr.decode()[-500:]}")
        medians = {label: statistics.median(values) for label, values in times.items()}
        change = medians["new"] / medians["old"] - 1
        print(
            f"{name:<24} old {medians['old'] * 1000:7.0f} ms   new {medians['new'] * 1000:7.0f} ms"
            f"   {change:+.0%}",
            flush=True,
        )


if __name__ == "__main__":
    main()
