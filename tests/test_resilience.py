"""Apply that survives anything: kills, faults, rate limits and a second writer.

These run the real CLI in subprocesses against the emulator served on 127.0.0.1, as CI would.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from orqsync.commands.plan import plan as plan_project
from orqsync.emulator import Emulator, EmulatorConfig, EmulatorServer, FaultConfig
from orqsync.remote.apply import apply_plan
from orqsync.remote.client import OrqClient, Pacer
from orqsync.review.render import NO_CHANGES
from orqsync.source.project import load_project
from orqsync.state.files import StateFile
from orqsync.state.lock import read_lock, state_lock
from orqsync.state.model import Provenance

KEY = "sk-orq-resilience-test-key"
DEFINITIONS = """\
version: 1
definitions:
  rating:           {type: single_select, options: [good, bad]}
  defects:          {type: multi_select, options: [grammatical, spelling, hallucination]}
  confidence_score: {type: range, min: 0, max: 1}
  correction:       {type: text}
"""


def write_big_project(root: Path, base_url: str, spans: int, files: int = 5) -> None:
    """`spans` spans with 4 keys each, spread over `files` files, deterministic."""
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "orqsync.yaml").write_text(
        "version: 1\n"
        f"api: {{base_url: '{base_url}', parallelism: 4, max_attempts: 20}}\n"
        "metadata: {source: orqsync}\n"
        "policy: {max_removals: 100000}\n"
    )
    (root / "definitions.yaml").write_text(DEFINITIONS)
    per_file = spans // files
    for number in range(files):
        lines = ["version: 1", "spans:"]
        for index in range(number * per_file, (number + 1) * per_file):
            lines += [
                # OpenTelemetry ids, never all zeros (ids.py)
                f"  - trace_id: {index // 10 + 1:032x}",
                f"    span_id: {index + 1:016x}",
                "    annotations:",
                f"      rating: {'good' if index % 3 else 'bad'}",
                f"      defects: [{'spelling' if index % 2 else 'grammatical'}]",
                f"      confidence_score: {index % 100 / 100}",
                f"      correction: Fix number {index}.",
            ]
        (root / "annotations" / f"part{number}.yaml").write_text("\n".join(lines) + "\n")


def expected_rows(spans: int) -> dict[tuple[str, str, str], object]:
    rows: dict[tuple[str, str, str], object] = {}
    for index in range(spans):
        trace, span = f"{index // 10 + 1:032x}", f"{index + 1:016x}"
        rows[(trace, span, "rating")] = "good" if index % 3 else "bad"
        rows[(trace, span, "defects")] = ["spelling" if index % 2 else "grammatical"]
        number = index % 100 / 100
        rows[(trace, span, "confidence_score")] = int(number) if number.is_integer() else number
        rows[(trace, span, "correction")] = f"Fix number {index}."
    return rows


def held(server: EmulatorServer) -> dict[tuple[str, str, str], object]:
    rows = httpx.get(server.url + "/_emulator/annotations").json()["annotations"]
    return {(r["trace_id"], r["span_id"], r["key"]): r["value"] for r in rows}


def orqsync(root: Path, *args: str, output: bool = True) -> subprocess.Popen[str]:
    """The CLI in a subprocess. Without `output`, what it prints is dropped: an unread pipe
    fills up and blocks the writer, which would stall a run we mean to kill mid-way."""
    env = {**os.environ, "ORQ_API_KEY": KEY}
    return subprocess.Popen(
        [sys.executable, "-m", "orqsync", "-C", str(root), *args],
        env=env,
        stdout=subprocess.PIPE if output else subprocess.DEVNULL,
        stderr=subprocess.PIPE if output else subprocess.DEVNULL,
        text=True,
    )


def run(root: Path, *args: str) -> tuple[int, str, str]:
    process = orqsync(root, *args)
    out, err = process.communicate(timeout=300)
    return process.returncode, out, err


def journal_counts(root: Path) -> tuple[int, int]:
    """(finished, in flight) in the journal an interrupted apply left."""
    path = root / ".orqsync" / "state.json.journal"
    if not path.exists():
        return 0, 0
    intents, done = set(), set()
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            break
        if entry["op"] == "intent":
            intents.add(entry["req"])
        elif "req" in entry:
            done.add(entry["req"])
    return len(done), len(intents - done)


@pytest.fixture
def served(tmp_path_factory):
    definitions = tmp_path_factory.mktemp("orq") / "definitions.yaml"
    definitions.write_text(DEFINITIONS)

    def start(**faults: object) -> EmulatorServer:
        emulator = Emulator(
            EmulatorConfig(
                api_keys=(KEY,),
                definitions_path=str(definitions),
                faults=FaultConfig(**faults),
            )
        )
        server = EmulatorServer(emulator).start()
        started.append((server, emulator))
        return server

    started: list[tuple[EmulatorServer, Emulator]] = []
    yield start
    for server, emulator in started:
        server.stop()
        emulator.close()


@pytest.mark.slow
def test_apply_killed_at_ten_random_points_finishes_without_loss_or_doubling(tmp_path, served):
    spans = 500  # 2,000 annotations, 500 requests
    rng = random.Random(20261123)
    for trial in range(10):
        server = served(latency_ms=2)
        root = tmp_path / f"trial{trial}"
        write_big_project(root, server.url, spans)
        journal = root / ".orqsync" / "state.json.journal"
        target = rng.randint(1, spans - 20)  # requests finished before the kill
        process = orqsync(root, "apply", "--auto-approve", output=False)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if journal.exists() and journal.read_text().count('"op":"set"') >= target:
                break
            time.sleep(0.001)
        assert process.poll() is None, "the apply ended before its kill point"
        process.kill()
        process.wait()
        finished, in_flight = journal_counts(root)
        assert finished >= target
        code, _, err = run(root, "apply", "--auto-approve")
        assert code == 0, err
        assert f"Finishing an interrupted apply: {finished} of its requests" in err
        assert held(server) == expected_rows(spans)
        code, out, _ = run(root, "plan", "--detailed-exitcode")
        assert (code, out) == (0, NO_CHANGES + "\n")
        log = httpx.get(server.url + "/_emulator/requests").json()
        resent = sum(1 for r in log["requests"] if r["status"] == 200) - spans
        assert 0 <= resent <= in_flight
        assert not journal.exists()
        assert not (root / ".orqsync" / "state.json.lock").exists()


@pytest.mark.slow
def test_apply_under_chaos_ends_exactly_at_the_desired_state(tmp_path, served):
    spans = 1250  # 5,000 annotations
    server = served(seed=5, error_rate=0.2, burst_429_rate=0.05, drop_rate=0.05)
    write_big_project(tmp_path, server.url, spans)
    settings = load_project(str(tmp_path))
    planned = plan_project(settings)
    retries: list[float] = []
    client = OrqClient(
        server.url,
        KEY,
        max_attempts=40,
        sleep=lambda seconds: None,  # the backoff is computed and recorded, not slept
        pacer=Pacer(sleep=lambda seconds: None),
        on_retry=lambda error, delay: retries.append(delay),
        backoff_base=0.001,
    )
    with client:
        report = apply_plan(
            planned.plan,
            client,
            StateFile.of(settings),
            planned.state,
            Provenance(),
            parallelism=8,
        )
    assert report.complete, report.failures[:3]
    assert len(retries) > 100  # the faults really happened
    assert held(server) == expected_rows(spans)
    assert plan_project(load_project(str(tmp_path))).plan.empty


def test_a_second_writer_fails_fast_naming_the_holder(make_project):
    project = make_project(
        **{
            "annotations/a.yaml": """\
        version: 1
        spans:
          - {trace_id: t, span_id: s, annotations: {rating: good}}
        """
        }
    )
    state_path = str(project.root / ".orqsync" / "state.json")
    with state_lock(state_path, "apply", {"GITHUB_ACTOR": "ci-bot"}) as holder:
        result = project.run("apply", "--auto-approve")
        assert result.exit_code == 1
        assert f"error: the state is locked: ci-bot on {holder.host} (pid {os.getpid()})" in (
            result.stderr
        )
        assert f"holds it for `apply` since {holder.created}; lock id {holder.id}" in result.stderr
        assert f"`orqsync unlock {holder.id}`" in result.stderr
        wrong = project.run("unlock", "not-the-id")
        assert wrong.exit_code == 1
        assert "lock id not-the-id does not match the lock" in wrong.stderr
        assert read_lock(state_path) == holder
    assert not (project.root / ".orqsync" / "state.json").exists()


def test_unlock_releases_a_stuck_lock(make_project):
    project = make_project(**{"annotations/a.yaml": "version: 1\nspans: []\n"})
    state_path = str(project.root / ".orqsync" / "state.json")
    lock = state_lock(state_path, "apply")
    holder = lock.__enter__()  # left held, as by a process on another machine
    released = project.run("unlock", holder.id)
    assert released.exit_code == 0
    assert read_lock(state_path) is None


def test_a_lock_is_never_seen_without_its_holder(tmp_path):
    """A run that finds the lock taken reads who holds it: the lock file exists only whole.
    One thread takes and releases the lock over and over; another reads it meanwhile."""
    state_path = str(tmp_path / ".orqsync" / "state.json")
    seen: list[str] = []
    stop = threading.Event()

    def take_and_release() -> None:
        for _ in range(300):
            with state_lock(state_path, "apply"):
                pass
        stop.set()

    taker = threading.Thread(target=take_and_release)
    taker.start()
    while not stop.is_set():
        holder = read_lock(state_path)
        if holder is not None:
            seen.append(holder.id)
    taker.join()
    assert seen, "the reader never saw the lock held"
    unreadable = seen.count("unreadable")
    assert unreadable == 0, f"{unreadable} of {len(seen)} reads found a lock naming no holder"
    assert os.listdir(tmp_path / ".orqsync") == []  # no lock, no temporary file left


@pytest.mark.slow
def test_two_applies_started_together_one_wins_the_other_names_the_holder(tmp_path, served):
    server = served(latency_ms=50)  # long enough that the two runs overlap
    write_big_project(tmp_path, server.url, 100, files=1)
    both = [orqsync(tmp_path, "apply", "--auto-approve") for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in both]
    results = sorted((p.returncode, err) for p, (_, err) in zip(both, outputs, strict=True))
    (won, _), (lost, err) = results
    assert (won, lost) == (0, 1)
    assert "error: the state is locked: " in err
    assert "holds it for `apply` since " in err
    assert held(server) == expected_rows(100)
    assert run(tmp_path, "plan", "--detailed-exitcode")[0] == 0
    assert not (tmp_path / ".orqsync" / "state.json.lock").exists()
