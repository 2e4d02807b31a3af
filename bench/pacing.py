"""Scenario 8: apply at a server's rate limit, through random 429s and through 5xx storms.

Each part serves a fresh `orqsync emulator serve` with the faults it needs and applies a project
of single-request spans to it, exactly as a user would (`orqsync apply --auto-approve`):

- 8a, a token bucket of 1,200 requests a minute with a burst of 20 (the emulator sends
  X-RateLimit-* headers): wall time against the ideal (requests - burst) / rate, and the share
  of requests answered 429;
- 8b, 5% of requests answered 429 at random with Retry-After: 1: wall time against the same
  apply without faults plus the waits the server asked for (the union of [t, t + 1 s] over its
  429s, read from the emulator's request log);
- 8c, 20% 5xx and 5% dropped connections: wall time against the same apply without faults, and
  exact convergence (the emulator holds every annotation, the next plan is empty).
"""

from __future__ import annotations

import json
import os
import selectors
import shlex
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

KEY_ENV = "ORQSYNC_BENCH_KEY"
DEFINITIONS = "version: 1\ndefinitions:\n  rating: {type: single_select, options: [good, bad]}\n"


def write_project(root: Path, url: str, spans: int) -> Path:
    """`spans` spans with one annotation each: one request a span."""
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "orqsync.yaml").write_text(
        "version: 1\n"
        f"api: {{base_url: '{url}', api_key_env: {KEY_ENV}, parallelism: 8}}\n"
        "definitions: definitions.yaml\n"
        'sources: ["annotations/*.yaml"]\n'
        "policy: {max_removals: 1000000}\n",
        encoding="utf-8",
    )
    (root / "definitions.yaml").write_text(DEFINITIONS, encoding="utf-8")
    lines = ["version: 1", "spans:"]
    lines += [
        f"  - {{trace_id: {'b' * 32}, span_id: {n:016x}, annotations: {{rating: good}}}}"
        for n in range(1, spans + 1)
    ]
    (root / "annotations" / "spans.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


class Served:
    """An `orqsync emulator serve` child and its inspection routes."""

    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, route: str) -> dict:
        response = httpx.get(f"{self.url}/_emulator/{route}", timeout=60)
        response.raise_for_status()
        return response.json()

    def statuses(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.get("stats")["by_status"].items()}

    def log(self) -> list[dict]:
        return self.get("requests")["requests"]


@contextmanager
def serve(
    orqsync: list[str], key: str, definitions: Path, log: Path, *flags: str
) -> Iterator[Served]:
    argv = [*orqsync, "emulator", "serve", "--port", "0", "--api-key", key]
    argv += ["--definitions", str(definitions), *flags]
    with open(log, "wb") as errors:
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, text=True
        )
    assert child.stdout is not None
    try:
        url = ""
        deadline = time.monotonic() + 30
        with selectors.DefaultSelector() as selector:
            selector.register(child.stdout, selectors.EVENT_READ)
            while not url and time.monotonic() < deadline and child.poll() is None:
                if selector.select(timeout=0.5):
                    line = child.stdout.readline()
                    if "listening on " in line:
                        url = line.rsplit("listening on ", 1)[1].strip()
        if not url:
            raise RuntimeError(f"the emulator did not start: {shlex.join(argv)}")
        yield Served(url)
    finally:
        child.terminate()
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def union_of_pauses(log: list[dict], retry_after: float = 1.0) -> float:
    """Seconds covered by [t, t + Retry-After] over the 429s of the log."""
    spans = sorted(
        (entry["at"], entry["at"] + retry_after) for entry in log if entry["status"] == 429
    )
    total = 0.0
    end = float("-inf")
    for start, stop in spans:
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


def pacing_runs(
    workdir: Path,
    orqsync: list[str],
    run_apply: Callable[[str, Path], float],
    say: Callable[[str], None],
    *,
    key: str,
    requests: int = 1200,
    limited_requests: int = 1500,
    seed: int = 13,
    repeat: int = 3,
) -> dict[str, object]:
    """Run 8a and 8b once, and the clean and stormy applies `repeat` times each;
    `run_apply(label, project)` times one apply and returns its seconds."""
    base = workdir / "pacing"
    base.mkdir(parents=True, exist_ok=True)
    definitions = base / "definitions.yaml"
    definitions.write_text(DEFINITIONS, encoding="utf-8")
    found: dict[str, object] = {}

    def one(name: str, spans: int, *flags: str) -> tuple[float, Served, dict[str, int], list]:
        """One apply against an emulator served with `flags`; its seconds and what it saw."""
        project = base / name
        if project.exists():
            shutil.rmtree(project)
        with serve(orqsync, key, definitions, base / f"{name}.emulator.log", *flags) as served:
            write_project(project, served.url, spans)
            seconds = run_apply(f"apply-{name}", project)
            statuses = served.statuses()
            log = served.log()
            stored = served.get("stats")["annotations"]
            plan = subprocess.run(
                [*orqsync, "-C", str(project), "plan", "--detailed-exitcode"],
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, KEY_ENV: key},
            )
        say(
            f"  {name}: {seconds:.1f} s, the emulator answered {statuses}, holds {stored} "
            f"annotations; the next plan exits {plan.returncode}"
        )
        exact = stored == spans and plan.returncode == 0
        return seconds, served, {"exact": exact, **statuses}, log

    limited, _, statuses, _ = one(
        "limited", limited_requests, "--rate-limit", "1200", "--rate-limit-burst", "20"
    )
    found["limited"] = {"seconds": limited, "statuses": statuses, "requests": limited_requests}
    noisy, _, statuses, log = one(
        "noisy", requests, "--seed", str(seed), "--burst-429-rate", "0.05"
    )
    found["noisy"] = {"seconds": noisy, "statuses": statuses, "waits": union_of_pauses(log)}
    # The clean and stormy applies take seconds, so their run-to-run spread matters: the
    # median of `repeat` runs of each, taken in turns.
    cleans: list[float] = []
    storms: list[float] = []
    exact = True
    for number in range(repeat):
        cleans.append(one(f"clean{number}", requests)[0])
        seconds, _, statuses, _ = one(
            f"stormy{number}",
            requests,
            "--seed",
            str(seed + number),
            "--error-rate",
            "0.2",
            "--drop-rate",
            "0.05",
        )
        storms.append(seconds)
        exact = exact and bool(statuses["exact"])
    found["clean"] = {"seconds": statistics.median(cleans), "runs": cleans}
    found["stormy"] = {
        "seconds": statistics.median(storms),
        "runs": storms,
        "statuses": {**statuses, "exact": exact},
    }
    say(f"  raw: {json.dumps(found)}")
    return found
