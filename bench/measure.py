"""Run one command and measure it: `python bench/measure.py RESULT_JSON ARGV...`.

Writes {"seconds", "maxrss_kb", "code"} to RESULT_JSON: the wall time from just before the
spawn to the end of `wait4`, the child's peak resident set size as `wait4` reports it, and its
exit code (negative: killed by that signal). The command inherits stdin, stdout, stderr and the
environment.

Why a launcher: Linux counts into a child's `ru_maxrss` the peak RSS of the process it was
spawned from (exec records the old address space's high-water mark, and Python's subprocess
spawns with vfork). Spawned from the benchmark itself, whose memory grows, every child would
report at least the benchmark's peak. This launcher is a fresh interpreter of about 10 MB, so
the figure is the command's own (never below that floor).
"""

from __future__ import annotations

import json
import os
import sys
import time


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: measure.py RESULT_JSON ARGV...", file=sys.stderr)
        return 2
    result_path, command = argv[0], argv[1:]
    start = time.perf_counter()
    pid = os.posix_spawnp(command[0], command, os.environ)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - start
    result = {
        "seconds": seconds,
        "maxrss_kb": usage.ru_maxrss,
        "code": os.waitstatus_to_exitcode(status),
    }
    with open(result_path, "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
