"""How an orqsync process spends its memory and ends: the speed tricks, in one place.

A command reads and plans hundreds of thousands of small objects that hold no reference
cycles, then exits. Two things cost more than they give there (BENCHMARKS.md, "Where the full
plan's time goes", has the figures):

- the cycle collector's passes over those objects: `short_lived()` turns it off for the
  command; `long_running()` turns it back on for work that makes garbage for a long time
  (apply's network objects, the emulator server);
- freeing them one by one at exit: `keep_until_exit()` holds a command's result and `end()`
  ends the process without freeing it, as mypy's fast exit does; the operating system takes
  the memory back at once.

Inside another program (the tests) none of this is switched on: `short_lived()` is only called
by `cli.main`, and without it `keep_until_exit()` keeps nothing.
"""

from __future__ import annotations

import gc
import os
import sys

_kept: list[object] | None = None  # a list while short_lived() is in force


def short_lived() -> None:
    """The process runs one short command: no cycle collection, and results freed at exit."""
    global _kept
    gc.disable()
    _kept = []


def long_running() -> None:
    """The command does long work that makes garbage as it goes: collect cycles again."""
    gc.enable()


def keep_until_exit(*results: object) -> None:
    """Hold `results` until the process ends, so that end() need not free them."""
    if _kept is not None:
        _kept.extend(results)


def end(request: SystemExit) -> None:
    """End the process with the exit code `request` asks for, without freeing what was kept.
    The streams are flushed first; if that fails (a closed pipe), or the request is not a
    code, Python's own exit handles it as usual."""
    code = 0 if request.code is None else request.code
    if not isinstance(code, int):
        raise request
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        raise request from None
    os._exit(code)
