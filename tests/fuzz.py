"""Fuzzing: random and mutated inputs to orqsync's readers, for a set time.

    .venv/bin/python tests/fuzz.py --minutes 30 [--seed N] [--findings DIR]

Each round takes a seed input (the bad-input corpus, the examples' files, a state and a saved
plan made from the quickstart), mutates it (bytes flipped, YAML's traps inserted: anchors,
aliases, tags, brackets, tabs, NUL, a BOM, deep nesting, long strings; lines cut, doubled or
spliced from another file) and feeds it to:

- both YAML readers (the fast and the strict one, through `load_desired`): each must give a
  desired state or problems that each name a file and a line, and the two must agree;
- the state readers (`parse_state` and the indexed snapshot a plan uses): a state or a
  StateError that names the file;
- the saved-plan reader (`load_plan`): a plan or an OrqsyncError that names the file.

Anything else (another exception, a problem without a location, the readers disagreeing) is
a finding: its input is written to the findings folder and the run ends with exit 1.
tests/test_fuzz.py runs a short, seeded version in the suite.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orqsync.errors import OrqsyncError, ProblemsError, StateError  # noqa: E402
from orqsync.planning.planfile import load_plan  # noqa: E402
from orqsync.source.desired import load_desired  # noqa: E402
from orqsync.source.project import Settings, load_project  # noqa: E402
from orqsync.state.codec import parse_state  # noqa: E402
from orqsync.state.files import StateFile  # noqa: E402

TRAPS = [
    b"&a ",
    b"*a",
    b"!!python/object:os.system ",
    b"!!str ",
    b"<<: *a",
    b"{",
    b"}",
    b"[",
    b"]",
    b": ",
    b"- ",
    b"\t",
    b"\x00",
    b"\xef\xbb\xbf",
    b"\n",
    b"'",
    b'"',
    b"#",
    b"%YAML 1.1\n",
    b"---\n",
    b"...\n",
    b"? ",
    b"|\n",
    b">-\n",
    b"\\u2028",
    b"\xe2\x80\xa8",
    b"\xff\xfe",
    b"yes",
    b"no",
    b"~",
    b"null",
    b".inf",
    b"1e999",
    b"-0",
    b"0x10",
    b"[" * 200,
    b"a" * 5000,
    b'"by":',
    b'"spans": [',
    b'"format_version": 2',
    b"<<<<<<< HEAD\n",
    b"}\n",
    b'{"trace_id":',
]
SLOW = 5.0  # seconds one input may take before it is a finding (a reader that hangs)
PROJECT = "version: 1\nworkspace: fuzz\nid_format: any\napi: {base_url: embedded}\n"


def seeds() -> dict[str, list[bytes]]:
    """Inputs to mutate, by reader: YAML annotation files, states and saved plans."""
    corpus = [p.read_bytes() for p in sorted((ROOT / "tests" / "corpus").rglob("*.yaml"))]
    # files valid against the definitions the fuzzed project uses (support-evals'), as often
    good = [p.read_bytes() for p in sorted((ROOT / "examples" / "support-evals").rglob("*.yaml"))]
    good = [data for data in good if b"spans:" in data]
    state, plan = _made_state_and_plan()
    return {
        "yaml": corpus + good * max(1, len(corpus) // len(good)),
        "state": [state],
        "plan": [plan],
    }


def _made_state_and_plan() -> tuple[bytes, bytes]:
    """A state and a saved plan of the quickstart, made by orqsync itself."""
    from click.testing import CliRunner

    from orqsync.cli import cli

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "q"
        shutil.copytree(ROOT / "examples" / "quickstart", root)
        shutil.rmtree(root / ".orqsync", ignore_errors=True)
        runner = CliRunner()
        runner.invoke(cli, ["-C", str(root), "apply", "--auto-approve"], catch_exceptions=False)
        example = root / "annotations" / "example.yaml"
        if example.exists():
            example.write_text(example.read_text().replace("good", "bad", 1))
        runner.invoke(cli, ["-C", str(root), "plan", "--out", str(root / "p.json")])
        return (root / ".orqsync" / "state.json").read_bytes(), (root / "p.json").read_bytes()


def mutate(data: bytes, rng: random.Random, others: list[bytes]) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(6)
        at = rng.randint(0, len(out))
        if kind == 0 and out:  # a byte flipped
            index = rng.randrange(len(out))
            out[index] = rng.randrange(256)
        elif kind == 1:  # a trap inserted
            out[at:at] = rng.choice(TRAPS)
        elif kind == 2 and out:  # a range cut
            end = min(len(out), at + rng.randint(1, 40))
            del out[at:end]
        elif kind == 3:  # a line doubled
            lines = bytes(out).split(b"\n")
            index = rng.randrange(len(lines))
            lines.insert(index, lines[index])
            out = bytearray(b"\n".join(lines))
        elif kind == 4 and others:  # spliced with another input
            other = rng.choice(others)
            cut = rng.randint(0, len(other))
            out = out[:at] + bytearray(other[cut:])
        else:  # deep nesting
            depth = rng.choice((10, 60, 200))
            out[at:at] = b"[" * depth + b"x" + b"]" * depth
    return bytes(out)


class Finding(Exception):
    pass


_PROJECTS: dict[Path, Settings] = {}


def check_yaml(data: bytes, folder: Path) -> str:
    root = folder / "p"
    settings = _PROJECTS.get(root)
    if settings is None:  # one project per run: only its annotation file changes
        (root / "annotations").mkdir(parents=True)
        (root / "orqsync.yaml").write_text(PROJECT, encoding="utf-8")
        shutil.copy(ROOT / "examples" / "support-evals" / "definitions.yaml", root)
        settings = _PROJECTS[root] = load_project(str(root))
    (root / "annotations" / "a.yaml").write_bytes(data)
    results = []
    for fast in (True, False):
        try:
            desired = load_desired(settings, fast=fast)
        except ProblemsError as error:
            for problem in error.problems:
                if not problem.path:  # whole-file problems (empty, not UTF-8) need no line
                    raise Finding(f"a problem that names no file: {problem.render()}") from None
            results.append(("problems", [p.render() for p in error.problems + error.warnings]))
        else:
            warnings = [w.render() for w in desired.warnings]
            results.append(("desired", desired.spans, desired.feedback, warnings))
    if results[0] != results[1]:
        raise Finding(
            f"the readers disagree:\nfast:   {results[0]!r:.500}\nstrict: {results[1]!r:.500}"
        )
    return f"yaml {results[0][0]}"


def check_state(data: bytes, folder: Path) -> str:
    path = folder / "state.json"
    path.write_bytes(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None:
        try:
            parse_state(text, "state.json")
        except StateError as error:
            if "state.json" not in error.message:
                raise Finding(f"a state error without its file: {error.message}") from None
    try:
        StateFile(str(path), "state.json").snapshot().state()
    except StateError as error:
        if "state.json" not in error.message:
            raise Finding(f"a snapshot error without its file: {error.message}") from None
        return "state refused"
    return "state read"


def check_plan(data: bytes, folder: Path) -> str:
    path = folder / "plan.json"
    path.write_bytes(data)
    try:
        load_plan(str(path))
    except OrqsyncError as error:
        if str(path) not in error.message:
            raise Finding(f"a plan error without its file: {error.message}") from None
        return "plan refused"
    return "plan read"


CHECKS: dict[str, Callable[[bytes, Path], str]] = {
    "yaml": check_yaml,
    "state": check_state,
    "plan": check_plan,
}


def run(seconds: float, seed: int, findings: Path | None, rounds: int | None = None) -> dict:
    """Fuzz for `seconds` (or `rounds`); the counts per reader and the findings' files."""
    rng = random.Random(seed)
    inputs = seeds()
    counts: dict[str, int] = {}
    found: list[str] = []
    deadline = time.monotonic() + seconds
    done = 0
    with tempfile.TemporaryDirectory(prefix="orqsync-fuzz-") as folder:
        work = Path(folder)
        while (rounds is None and time.monotonic() < deadline) or (
            rounds is not None and done < rounds
        ):
            reader = rng.choice(["yaml", "yaml", "state", "plan"])
            data = mutate(rng.choice(inputs[reader]), rng, inputs[reader])
            outcome = f"{reader} finding"
            started = time.monotonic()
            try:
                outcome = CHECKS[reader](data, work)
                took = time.monotonic() - started
                if took > SLOW:
                    raise Finding(f"{reader}: one input took {took:.1f} s (more than {SLOW} s)")
            except Finding as finding:
                found.append(_keep(findings, reader, data, str(finding)))
            except Exception:  # anything unexpected is a finding: that is the point
                found.append(_keep(findings, reader, data, traceback.format_exc()))
            counts[outcome] = counts.get(outcome, 0) + 1
            done += 1
    return {"rounds": done, "outcomes": dict(sorted(counts.items())), "findings": found}


def _keep(findings: Path | None, reader: str, data: bytes, why: str) -> str:
    if findings is None:
        return why
    findings.mkdir(parents=True, exist_ok=True)
    number = len(list(findings.glob("*.input"))) + 1
    (findings / f"{number:04}-{reader}.input").write_bytes(data)
    (findings / f"{number:04}-{reader}.why.txt").write_text(why, encoding="utf-8")
    return f"{findings / f'{number:04}-{reader}.input'}: {why.splitlines()[-1]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--findings", type=Path, default=Path("fuzz-findings"))
    args = parser.parse_args()
    started = time.monotonic()
    result = run(args.minutes * 60, args.seed, args.findings)
    result["seed"] = args.seed
    result["seconds"] = round(time.monotonic() - started)
    print(json.dumps(result, indent=1))
    return 1 if result["findings"] else 0


if __name__ == "__main__":
    os.environ.setdefault("ORQ_API_KEY", "")
    sys.exit(main())
