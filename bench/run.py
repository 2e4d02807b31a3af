"""The performance benchmark of orqsync (see BENCHMARKS.md for what each scenario measures).

    .venv/bin/python bench/run.py                      # the full corpus: 100 x 1,000 x 4
    .venv/bin/python bench/run.py --quick              # a smoke run in seconds (10 x 200 x 4)
    .venv/bin/python bench/run.py --scenarios 2,7      # some scenarios only
    .venv/bin/python bench/run.py --scenarios 10       # several reviewers (brings in 1 and 2)
    .venv/bin/python bench/run.py --update-doc         # also rewrite the results in BENCHMARKS.md

Generates a deterministic synthetic repository (cached in the work directory), runs every
command as a subprocess exactly as a user would (`orqsync -C DIR plan > /dev/null`), times it
with the wall clock, reads the child's peak RSS from wait4, and prints each figure as the median
of the runs with its ratio to the reference measured in the same run, first as a text table,
then in the markdown form BENCHMARKS.md uses. Everything is also written as JSON to the work
directory. A failing command stops the run with its stderr; nothing is hidden.

Scenario 10, several reviewers (README, Several reviewers; BENCHMARKS.md says more): the
corpus of scenario 1 written once per reviewer of a panel of three (reviewers/<name>/..., the
file's `reviewerId` the reviewer's; alice's values are the corpus's, bob and carol give another
value on a seeded ~10% of the keys), with `reviews: {rule: majority}` in orqsync.yaml. A
three-way tie is not planned. 10a: the full plan with no state, against scenario 1 (goal
≤ 1.5 ×), after a check that the plan adds every annotation but the ties. 10b: in a fresh clone
with the state one apply of this project left, a pull-request plan after bob changed ten votes
in one file (five change the value planned), against scenario 2b (goal ≤ 1.5 ×).
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import datetime
import json
import math
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

from corpus import (  # noqa: E402
    GENERATOR_VERSION,
    PANEL_SOURCES,
    Corpus,
    PanelChange,
    PullRequestChange,
    generate,
    generate_panel,
    panel_change,
    project_yaml,
    pull_request_change,
    write_text,
)
from pacing import pacing_runs  # noqa: E402

ALL_SCENARIOS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
KEY_ENV = "ORQSYNC_BENCH_KEY"
EMULATOR_KEY = "bench-emulator-key"
PARALLELISM = 8
DOC_START = "<!-- bench:results:start -->"
DOC_END = "<!-- bench:results:end -->"
SUMMARY_SCRIPT = (
    "import json, sys; print(json.dumps(json.load(open(sys.argv[1], encoding='utf-8'))['summary']))"
)
# the summary and the number of keys listed as not resolved (scenario 10)
UNRESOLVED_SCRIPT = (
    "import json, sys; d = json.load(open(sys.argv[1], encoding='utf-8')); "
    "print(json.dumps({**d['summary'], "
    "'unresolved': len(d.get('unresolved', [])) + d.get('unresolved_left_out', 0)}))"
)


QUEUE_RULES = "rating: bad; tone unlabelled"
QUEUE_FILES = {
    "queues/bad.yaml": "version: 1\nname: bad\nselect:\n  - where: {rating: bad}\n",
    "queues/untoned.yaml": "version: 1\nname: untoned\nselect:\n  - unlabelled: tone\n",
}


def write_queues(project: Path) -> None:
    """Scenario 9's two queue files, and the project they belong to."""
    for name, text in QUEUE_FILES.items():
        write_text(str(project / name), text)
    config = project / "orqsync.yaml"
    config.write_text(
        config.read_text(encoding="utf-8") + "project_id: 01JQ3M2Z8K4N6P7R9S0T1V2W3X\n",
        encoding="utf-8",
    )


class BenchError(Exception):
    """A command failed or a check did not hold: the run stops with this message."""


# Running and measuring children ---------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    rss_mb: float  # peak resident set size of the child, in MB (10^6 bytes)
    code: int
    stdout_path: str | None
    stderr_path: str


class Runner:
    """Runs children as a user would, timing them and keeping their stderr in logs/."""

    def __init__(self, workdir: Path) -> None:
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.counter = 0

    def run(
        self,
        label: str,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        stdout: str | None = None,
        expect: tuple[int, ...] = (0,),
    ) -> Run:
        """Run `argv` with stdout to `stdout` (default /dev/null); stop on an unexpected code.

        The command runs under bench/measure.py, which times it and reads its peak RSS.
        """
        self.counter += 1
        stderr_path = str(self.logs / f"{self.counter:04d}-{label}.stderr")
        result_path = self.logs / "measure.json"
        result_path.unlink(missing_ok=True)
        launcher = [sys.executable, str(BENCH / "measure.py"), str(result_path), *argv]
        with (
            open(stdout or os.devnull, "wb") as out,
            open(stderr_path, "wb") as err,
        ):
            child = subprocess.Popen(
                launcher,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
                start_new_session=True,  # so that an interrupted run can stop it all
            )
            try:
                child.wait()
            except BaseException:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGTERM)
                child.wait()
                raise
        if child.returncode != 0 or not result_path.is_file():
            raise BenchError(
                f"could not run (launcher exit code {child.returncode}):\n"
                f"  {shlex.join(argv)}\n"
                f"stderr ({stderr_path}), last lines:\n{tail(stderr_path)}"
            )
        measured = json.loads(result_path.read_text(encoding="utf-8"))
        code = measured["code"]
        run = Run(
            measured["seconds"], measured["maxrss_kb"] * 1024 / 1e6, code, stdout, stderr_path
        )
        if code not in expect:
            raise BenchError(
                f"command failed with exit code {code} (expected {', '.join(map(str, expect))}):\n"
                f"  {shlex.join(argv)}\n"
                f"stderr ({stderr_path}), last lines:\n{tail(stderr_path)}"
            )
        return run


def tail(path: str, lines: int = 40) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        text = handle.read().splitlines()
    shown = text[-lines:]
    prefix = [f"  ... ({len(text) - lines} lines before)"] if len(text) > lines else []
    return "\n".join(prefix + ["  " + line for line in shown]) or "  (empty)"


def orqsync_command() -> list[str]:
    """The `orqsync` a user of this virtualenv runs: its entry point, else `python -m orqsync`."""
    script = Path(sys.executable).parent / "orqsync"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "orqsync"]


# Formatting -----------------------------------------------------------------------------------


def seconds_text(value: float) -> str:
    if value >= 100:
        return f"{value:.0f} s"
    if value >= 1:
        return f"{value:.2f} s"
    return f"{value * 1000:.0f} ms"


def number_text(value: int) -> str:
    return f"{value:,}"


def say(text: str) -> None:
    print(text, flush=True)


# Machine, commit, corpus ----------------------------------------------------------------------


def machine() -> dict[str, object]:
    info: dict[str, object] = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "system": f"{platform.system()} {platform.release()}",
        "pyyaml": f"{yaml.__version__}{' with libyaml' if yaml.__with_libyaml__ else ''}",
        "httpx": httpx.__version__,
    }
    if hasattr(os, "sched_getaffinity"):
        info["usable_cores"] = len(os.sched_getaffinity(0))
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    info["memory_gib"] = round(int(line.split()[1]) * 1024 / 2**30, 1)
    except OSError:
        pass
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def machine_text(info: dict[str, object]) -> str:
    cores = f"{info['cores']} cores"
    if info.get("usable_cores") not in (None, info["cores"]):
        cores += f" ({info['usable_cores']} usable)"
    parts = [cores + (f" ({info['cpu']})" if info.get("cpu") else "")]
    if "memory_gib" in info:
        parts.append(f"{info['memory_gib']} GiB memory")
    parts.append(str(info["system"]))
    parts.append(f"{info['implementation']} {info['python']}")
    parts.append(f"PyYAML {info['pyyaml']}, httpx {info['httpx']}")
    return ", ".join(parts)


def git_info() -> dict[str, object]:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    changed = [
        line[3:]
        for line in git(
            "status", "--porcelain", "--", "orqsync", "schemas", "pyproject.toml"
        ).splitlines()
        if line
    ]
    return {"commit": commit or "unknown", "uncommitted": changed}


def git_text(info: dict[str, object]) -> str:
    changed = info["uncommitted"]
    assert isinstance(changed, list)
    if not changed:
        return f"commit {info['commit']}, clean working tree"
    return (
        f"commit {info['commit']} plus uncommitted changes in {len(changed)} file"
        f"{'s' if len(changed) != 1 else ''} of orqsync/, schemas/, pyproject.toml"
    )


@dataclass
class Prepared:
    """The cached corpus and the projects made from it."""

    corpus: Corpus
    source: Path  # the generated files, cached across runs
    files: list[str]
    size: int
    quoted_ids: int
    quoted_texts: int
    projects: Path

    @property
    def fingerprint(self) -> str:
        c = self.corpus
        return f"{c.files}x{c.spans}x{c.keys}-seed{c.seed}-gen{GENERATOR_VERSION}"


def prepare_corpus(corpus: Corpus, workdir: Path) -> Prepared:
    fingerprint = f"{corpus.files}x{corpus.spans}x{corpus.keys}-seed{corpus.seed}"
    source = workdir / f"corpus-{fingerprint}-gen{GENERATOR_VERSION}"
    manifest_path = source / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        say(f"Corpus: reusing {source}")
    else:
        say(f"Corpus: generating {corpus.annotations:,} annotations in {source} ...")
        start = time.perf_counter()
        written = generate(corpus, str(source))
        manifest = {
            "files": written.files,
            "size": written.size,
            "quoted_ids": written.quoted_ids,
            "quoted_texts": written.quoted_texts,
        }
        manifest_path.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        say(f"Corpus: generated and read back in {time.perf_counter() - start:.1f} s")
    prepared = Prepared(
        corpus,
        source,
        manifest["files"],
        manifest["size"],
        manifest["quoted_ids"],
        manifest["quoted_texts"],
        workdir / f"projects-{fingerprint}",
    )
    say(
        f"Corpus: {corpus.files:,} files x {corpus.spans:,} spans x {corpus.keys} keys = "
        f"{corpus.annotations:,} annotations, {prepared.size / 1e6:.1f} MB of YAML "
        f"({prepared.quoted_ids} ids and {prepared.quoted_texts:,} texts quoted because YAML "
        "needs it)"
    )
    return prepared


def make_project(prepared: Prepared, name: str, files: list[str], project_file: str) -> Path:
    """A fresh copy of definitions and `files` (real copies: fresh mtimes, as in a clone)."""
    root = prepared.projects / name
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    shutil.copyfile(prepared.source / "definitions.yaml", root / "definitions.yaml")
    for relpath in files:
        target = root / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(prepared.source / relpath, target)
    write_text(str(root / "orqsync.yaml"), project_file)
    return root


@dataclass
class Panel:
    """Scenario 10's reviewer files, cached across runs, and what their votes come to."""

    source: Path  # holds reviewers/<name>/annotations/...
    size: int
    unresolved: int
    resolved: int
    requests: int


def prepare_panel(prepared: Prepared, workdir: Path) -> Panel:
    source = workdir / f"panel-{prepared.fingerprint}"
    manifest_path = source / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        say(f"  panel: reusing {source}")
    else:
        say(f"  panel: writing the corpus once per reviewer in {source} ...")
        start = time.perf_counter()
        written = generate_panel(prepared.corpus, str(source))
        tally = written.tally
        manifest = {
            "size": written.size,
            "unresolved": tally.unresolved,
            "resolved": tally.resolved,
            "requests": tally.requests,
        }
        manifest_path.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        say(f"  panel: written and read back in {time.perf_counter() - start:.1f} s")
    return Panel(
        source, manifest["size"], manifest["unresolved"], manifest["resolved"], manifest["requests"]
    )


def make_panel_project(
    prepared: Prepared, panel: Panel, name: str, project_file: str, change: PanelChange | None
) -> Path:
    """A fresh copy of definitions and every reviewer's files, with `change` made."""
    root = prepared.projects / name
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    shutil.copyfile(prepared.source / "definitions.yaml", root / "definitions.yaml")
    shutil.copytree(panel.source / "reviewers", root / "reviewers", copy_function=shutil.copyfile)
    write_text(str(root / "orqsync.yaml"), project_file)
    if change is not None:
        write_text(str(root / change.relpath), change.text)
    return root


def clear_state(project: Path) -> None:
    shutil.rmtree(project / ".orqsync", ignore_errors=True)


# Results ---------------------------------------------------------------------------------------


@dataclass
class Row:
    id: str
    scenario: str
    measured: str
    reference: str
    ratio: float | None
    goal: str
    met: bool | None
    runs: str = ""


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    raw: dict[str, object] = field(default_factory=dict)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        ratio = f", ratio {row.ratio:.2f}" if row.ratio is not None else ""
        verdict = {True: "met", False: "NOT met", None: "n/a"}[row.met]
        say(f"  => {row.id}. {row.scenario}: {row.measured}{ratio} (goal {row.goal}: {verdict})")


def runs_text(values: list[float], unit: str = "s") -> str:
    if unit == "MB":
        return ", ".join(f"{v:.0f}" for v in values)
    return ", ".join(f"{v:.2f}" if v >= 0.1 else f"{v * 1000:.0f}ms" for v in values)


# The benchmark ---------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path, prepared: Prepared) -> None:
        self.args = args
        self.workdir = workdir
        self.prepared = prepared
        self.corpus = prepared.corpus
        self.runner = Runner(workdir)
        self.orqsync = orqsync_command()
        self.results = Results()
        self.env = dict(os.environ)
        self.env[KEY_ENV] = EMULATOR_KEY
        self.env.pop("ORQ_API_KEY", None)
        self.reference: list[float] = []
        self.full_plan: list[Run] = []
        self.pr_plan: list[Run] = []
        self.pr_plan_cold: list[Run] = []
        self.emulator: subprocess.Popen[str] | None = None
        self.emulator_url = ""
        self.apply_ready = False

    # helpers

    def measure(self, label: str, argv: list[str], times: int, **kwargs: object) -> list[Run]:
        runs = []
        for number in range(1, times + 1):
            run = self.runner.run(label, argv, **kwargs)  # type: ignore[arg-type]
            runs.append(run)
            say(f"  {label} {number}/{times}: {seconds_text(run.seconds)}, {run.rss_mb:.0f} MB")
        return runs

    def embedded_project(self, name: str, files: list[str]) -> Path:
        return make_project(self.prepared, name, files, project_yaml("embedded"))

    def plan_summary(
        self, project: Path, out: Path, script: str = SUMMARY_SCRIPT
    ) -> dict[str, int]:
        """`plan --format json` (untimed) into `out`, for the checks; returns its summary
        (with UNRESOLVED_SCRIPT, also the number of keys not resolved).

        The document is read in a subprocess: at full scale it takes more than 1 GB in memory,
        which this process is better without.
        """
        argv = [*self.orqsync, "-C", str(project), "plan", "--format", "json"]
        self.runner.run("plan-json", argv, stdout=str(out))
        read = subprocess.run(
            [sys.executable, "-c", script, str(out)],
            capture_output=True,
            text=True,
            check=False,
        )
        if read.returncode != 0:
            raise BenchError(f"cannot read the summary of {out}:\n{read.stderr}")
        return json.loads(read.stdout)

    @property
    def minimum_requests(self) -> int:
        return self.corpus.files * self.corpus.spans * math.ceil(self.corpus.keys / 10)

    # the reference

    def measure_reference(self) -> float:
        if self.reference:
            return statistics.median(self.reference)
        say("\nReference: yaml.load(text, Loader=yaml.CSafeLoader) of every file, load time only")
        listing = self.workdir / "reference-files.txt"
        listing.write_text(
            "".join(f"{self.prepared.source / p}\n" for p in self.prepared.files), encoding="utf-8"
        )
        out = self.workdir / "reference.json"
        argv = [sys.executable, str(BENCH / "yaml_reference.py"), str(listing)]
        for number in range(1, self.args.repeat + 1):
            self.runner.run("reference", argv, stdout=str(out))
            seconds = json.loads(out.read_text(encoding="utf-8"))["seconds"]
            self.reference.append(seconds)
            say(f"  reference {number}/{self.args.repeat}: {seconds_text(seconds)}")
        self.results.raw["reference_seconds"] = self.reference
        return statistics.median(self.reference)

    def ratio_row(self, row_id: str, name: str, runs: list[Run], goal: float) -> Row:
        reference = self.measure_reference()
        median = statistics.median(r.seconds for r in runs)
        ratio = median / reference
        return Row(
            row_id,
            name,
            seconds_text(median),
            f"{seconds_text(reference)} (yaml.load, CSafeLoader)",
            ratio,
            f"≤ {goal:g} × reference",
            ratio <= goal,
            runs_text([r.seconds for r in runs]),
        )

    # scenario 1

    def scenario_full_plan(self) -> None:
        corpus = self.corpus
        say(f"\n[1] Full plan, no state: {corpus.annotations:,} annotations all new")
        project = self.embedded_project("full", self.prepared.files)
        summary = self.plan_summary(project, self.workdir / "plan-full.json")
        expected = {
            "create": corpus.annotations,
            "update": 0,
            "delete": 0,
            "requests": self.minimum_requests,
        }
        if summary != expected:
            raise BenchError(f"the full plan's summary is {summary}, expected {expected}")
        say(f"  check: plan --format json summary {summary} as expected")
        argv = [*self.orqsync, "-C", str(project), "plan"]
        runs = []
        for number in range(1, self.args.repeat + 1):
            clear_state(project)  # nothing left over from a previous run (a cache, say)
            runs.extend(self._once("plan-full", argv, number))
        self.full_plan = runs
        self.results.raw["full_plan"] = [r.__dict__ for r in runs]
        self.results.add(self.ratio_row("1", "Full plan (no state, all new)", runs, 0.3))

    def _once(self, label: str, argv: list[str], number: int, **kwargs: object) -> list[Run]:
        run = self.runner.run(label, argv, **kwargs)  # type: ignore[arg-type]
        say(
            f"  {label} {number}/{self.args.repeat}: {seconds_text(run.seconds)}, "
            f"{run.rss_mb:.0f} MB"
        )
        return [run]

    # scenario 3

    def scenario_validate(self) -> None:
        say(f"\n[3] validate of the whole corpus ({self.corpus.annotations:,} annotations)")
        project = self.embedded_project("validate", self.prepared.files)
        argv = [*self.orqsync, "-C", str(project), "validate"]
        runs = self.measure("validate", argv, self.args.repeat)
        self.results.raw["validate"] = [r.__dict__ for r in runs]
        self.results.add(self.ratio_row("3", "validate, whole corpus", runs, 0.3))

    # scenario 6

    def scenario_growth(self) -> None:
        corpus = self.corpus
        small_files = max(1, corpus.files // 10)
        small = small_files * corpus.spans * corpus.keys
        say(
            f"\n[6] Growth: full plan at {small:,} annotations ({small_files} files) "
            f"against {corpus.annotations:,}"
        )
        project = self.embedded_project("small", self.prepared.files[:small_files])
        argv = [*self.orqsync, "-C", str(project), "plan"]
        runs = []
        for number in range(1, self.args.repeat + 1):
            clear_state(project)
            runs.extend(self._once("plan-small", argv, number))
        self.results.raw["small_plan"] = [r.__dict__ for r in runs]
        full = statistics.median(r.seconds for r in self.full_plan) / corpus.annotations
        tenth = statistics.median(r.seconds for r in runs) / small
        ratio = full / tenth
        self.results.add(
            Row(
                "6",
                f"Growth: time per annotation at {corpus.annotations:,} vs at {small:,}",
                f"{full * 1e6:.1f} µs",
                f"{tenth * 1e6:.1f} µs (plan of {small:,} annotations: "
                f"{seconds_text(statistics.median(r.seconds for r in runs))})",
                ratio,
                "≤ 1.25 ×",
                ratio <= 1.25,
                runs_text([r.seconds for r in runs]),
            )
        )

    # scenario 7

    def scenario_startup(self) -> None:
        times = self.args.startup_repeat
        say(f"\n[7] Start-up: `orqsync --version` against `python -c pass`, {times} runs each")
        python_runs: list[float] = []
        orqsync_runs: list[float] = []
        version_out = self.workdir / "version.txt"
        for _ in range(times):  # interleaved, so that drift hits both alike
            python_runs.append(
                self.runner.run("python-pass", [sys.executable, "-c", "pass"]).seconds
            )
            run = self.runner.run("version", [*self.orqsync, "--version"], stdout=str(version_out))
            orqsync_runs.append(run.seconds)
        version = version_out.read_text(encoding="utf-8").strip()
        self.results.raw["startup"] = {"python": python_runs, "orqsync": orqsync_runs}
        self.results.raw["orqsync_version"] = version
        say(f"  {version}")
        python = statistics.median(python_runs)
        orqsync = statistics.median(orqsync_runs)
        ratio = orqsync / python
        self.results.add(
            Row(
                "7",
                "Start-up: `orqsync --version`",
                seconds_text(orqsync),
                f"{seconds_text(python)} (`python -c pass`)",
                ratio,
                "≤ 3 × reference",
                ratio <= 3,
                f"median of {times}",
            )
        )

    # scenario 4 and the emulator

    def start_emulator(self, definitions: Path) -> str:
        if self.emulator is not None:
            return self.emulator_url
        argv = [
            *self.orqsync,
            "emulator",
            "serve",
            "--port",
            "0",
            "--definitions",
            str(definitions),
            "--api-key",
            EMULATOR_KEY,
        ]
        log = open(self.runner.logs / "emulator.stderr", "wb")  # noqa: SIM115 - lives on
        self.emulator = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True
        )
        assert self.emulator.stdout is not None
        deadline = time.monotonic() + 30
        import selectors

        with selectors.DefaultSelector() as selector:
            selector.register(self.emulator.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if not selector.select(timeout=0.5):
                    if self.emulator.poll() is not None:
                        break
                    continue
                line = self.emulator.stdout.readline()
                if not line:
                    break
                if "listening on " in line:
                    self.emulator_url = line.rsplit("listening on ", 1)[1].strip()
                    say(f"  emulator: {shlex.join(argv)} -> {self.emulator_url}")
                    return self.emulator_url
        self.stop_emulator()
        raise BenchError(
            f"the emulator did not start: {shlex.join(argv)}\n"
            f"{tail(str(self.runner.logs / 'emulator.stderr'))}"
        )

    def stop_emulator(self) -> None:
        if self.emulator is None:
            return
        if self.emulator.poll() is None:
            self.emulator.send_signal(signal.SIGTERM)
            try:
                self.emulator.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.emulator.kill()
                self.emulator.wait()
        self.emulator = None

    def emulator_call(self, method: str, route: str) -> dict[str, object]:
        response = httpx.request(method, f"{self.emulator_url}/_emulator/{route}", timeout=60)
        if response.status_code != 200:
            raise BenchError(f"{method} /_emulator/{route}: HTTP {response.status_code}")
        return response.json()

    def received(self) -> tuple[int, dict[str, int]]:
        stats = self.emulator_call("GET", "stats")
        by_status = stats["by_status"]
        assert isinstance(by_status, dict)
        return int(stats["requests"]), {str(k): int(v) for k, v in by_status.items()}

    def apply_project(self) -> Path:
        project = self.prepared.projects / "apply"
        if not self.apply_ready:  # a fresh copy once per invocation
            make_project(self.prepared, "apply", self.prepared.files, "")
            self.apply_ready = True
        url = self.start_emulator(project / "definitions.yaml")
        write_text(
            str(project / "orqsync.yaml"), project_yaml(url, api_key_env=KEY_ENV, parallelism=8)
        )
        return project

    def one_apply(
        self, project: Path, number: int, times: int, cache: Path | None = None
    ) -> tuple[Run, int]:
        self.emulator_call("POST", "reset")
        clear_state(project)
        argv = [*self.orqsync, "-C", str(project), "apply", "--auto-approve"]
        run = self.runner.run("apply", argv, env=self.env)
        count, by_status = self.received()
        say(
            f"  apply {number}/{times}: {seconds_text(run.seconds)}, {run.rss_mb:.0f} MB, "
            f"the emulator received {count:,} requests {by_status}"
        )
        self.cache_state(project, cache or self.state_cache())
        return run, count

    def state_cache(self) -> Path:
        return self.workdir / f"state-{self.prepared.fingerprint}"

    def cache_state(self, project: Path, cache: Path) -> None:
        cache.mkdir(exist_ok=True)
        shutil.copyfile(project / ".orqsync" / "state.json", cache / "state.json.tmp")
        shutil.copyfile(project / "orqsync.yaml", cache / "orqsync.yaml")
        os.replace(cache / "state.json.tmp", cache / "state.json")

    def scenario_apply(self) -> None:
        times = self.args.apply_repeat
        minimum = self.minimum_requests
        say(
            f"\n[4] Apply of the full corpus against the emulator on loopback "
            f"({minimum:,} requests at least), {times} runs, each followed by a raw replay"
        )
        project = self.apply_project()
        plan_path = self.workdir / "plan-apply.json"
        self.emulator_call("POST", "reset")
        clear_state(project)
        planned = self.plan_summary(project, plan_path)["requests"]
        say(f"  the plan has {planned:,} requests; the minimum is {minimum:,}")
        apply_runs: list[Run] = []
        replay_runs: list[float] = []
        counts: list[int] = []
        replay_argv = [
            sys.executable,
            str(BENCH / "replay.py"),
            str(plan_path),
            self.emulator_url,
            str(PARALLELISM),
        ]
        replay_out = self.workdir / "replay.json"
        for number in range(1, times + 1):
            run, count = self.one_apply(project, number, times)
            apply_runs.append(run)
            counts.append(count)
            self.emulator_call("POST", "reset")
            self.runner.run("replay", replay_argv, env=self.env, stdout=str(replay_out))
            replay = json.loads(replay_out.read_text(encoding="utf-8"))
            received, by_status = self.received()
            replay_runs.append(replay["seconds"])
            say(
                f"  raw replay {number}/{times}: {seconds_text(replay['seconds'])}, "
                f"{replay['sent']:,} sent, the emulator received {received:,} {by_status}"
            )
        self.results.raw["apply"] = {
            "runs": [r.__dict__ for r in apply_runs],
            "requests_received": counts,
            "planned_requests": planned,
            "minimum_requests": minimum,
            "replay_seconds": replay_runs,
        }
        exact = all(count == minimum for count in counts) and planned == minimum
        received_text = ", ".join(f"{c:,}" for c in sorted(set(counts)))
        self.results.add(
            Row(
                "4a",
                "Apply, full corpus: requests sent",
                received_text,
                f"minimum {minimum:,} (plan: {planned:,})",
                max(counts) / minimum,
                "= minimum",
                exact,
                f"{times} run{'s' if times != 1 else ''}",
            )
        )
        apply_median = statistics.median(r.seconds for r in apply_runs)
        replay_median = statistics.median(replay_runs)
        ratio = apply_median / replay_median
        self.results.add(
            Row(
                "4b",
                f"Apply, full corpus: wall time (parallelism {PARALLELISM})",
                seconds_text(apply_median),
                f"{seconds_text(replay_median)} (raw httpx replay, {PARALLELISM} threads)",
                ratio,
                "≤ 1.3 × reference",
                ratio <= 1.3,
                runs_text([r.seconds for r in apply_runs]) + " / replay " + runs_text(replay_runs),
            )
        )

    # scenario 8

    def scenario_pacing(self) -> None:
        say(
            "\n[8] Apply at the server's rate limit, through random 429s and through 5xx "
            "(bench/pacing.py: one emulator served per part, single-request spans)"
        )

        def run_apply(label: str, project: Path) -> float:
            argv = [*self.orqsync, "-C", str(project), "apply", "--auto-approve"]
            return self.runner.run(label, argv, env=self.env).seconds

        found = pacing_runs(self.workdir, self.orqsync, run_apply, say, key=EMULATOR_KEY)
        self.results.raw["pacing"] = found
        limited, clean = found["limited"], found["clean"]
        noisy, stormy = found["noisy"], found["stormy"]
        assert isinstance(limited, dict) and isinstance(clean, dict)
        assert isinstance(noisy, dict) and isinstance(stormy, dict)
        ideal = (limited["requests"] - 20) / 20
        answered = sum(v for k, v in limited["statuses"].items() if k != "exact")
        throttled = limited["statuses"].get("429", 0)
        ratio = limited["seconds"] / ideal
        share = throttled / answered
        self.results.add(
            Row(
                "8a",
                f"Apply at a limit of 1,200/min, burst 20: {limited['requests']:,} requests",
                f"{seconds_text(limited['seconds'])}, {throttled} answered 429 ({share:.1%})",
                f"{seconds_text(ideal)} (ideal: (requests - burst) / rate)",
                ratio,
                "≤ 1.1 × ideal, ≤ 2% 429s, exact",
                ratio <= 1.1 and share <= 0.02 and limited["statuses"]["exact"],
            )
        )
        base = clean["seconds"] + noisy["waits"]
        ratio = noisy["seconds"] / base
        self.results.add(
            Row(
                "8b",
                "Apply through 5% random 429s (Retry-After: 1)",
                f"{seconds_text(noisy['seconds'])}, {noisy['statuses'].get('429', 0)} 429s",
                f"{seconds_text(base)} (clean apply {seconds_text(clean['seconds'])} + "
                f"{seconds_text(noisy['waits'])} of waits asked)",
                ratio,
                "≤ 1.2 × reference, exact",
                ratio <= 1.2 and noisy["statuses"]["exact"],
            )
        )
        ratio = stormy["seconds"] / clean["seconds"]
        failed = sum(v for k, v in stormy["statuses"].items() if k.startswith("5") or k == "0")
        self.results.add(
            Row(
                "8c",
                "Apply through 20% 5xx and 5% dropped connections",
                f"{seconds_text(stormy['seconds'])}, {failed} failed attempts in the last run",
                f"{seconds_text(clean['seconds'])} (clean apply)",
                ratio,
                "≤ 1.5 × reference, exact",
                ratio <= 1.5 and stormy["statuses"]["exact"],
                runs_text(stormy["runs"]) + " / clean " + runs_text(clean["runs"]),
            )
        )

    # scenario 2

    def scenario_pull_request(self) -> None:
        change = pull_request_change(self.corpus)
        say(
            f"\n[2] Pull-request plan: state in sync, one file of {self.corpus.files} changed "
            f"({change.relpath}: {change.flipped} ratings flipped, {change.dropped} keys "
            f"dropped, {change.added_spans} span added)"
        )
        cache = self.state_cache()
        fresh = False
        if not (cache / "state.json").is_file():
            say("  no cached state for this corpus: one apply against the emulator makes it")
            self.one_apply(self.apply_project(), 1, 1)
            fresh = True
        else:
            say(f"  state: {cache / 'state.json'} (left by a complete apply of this corpus)")
        project = self.pr_project(cache, change)
        try:
            summary: object = self.pr_check(project, cache)
        except BenchError as error:
            if fresh:
                raise
            summary = f"an error ({str(error).splitlines()[0]})"
        if summary != change.expected and not fresh:
            say(
                f"  the cached state gives {summary}, expected {change.expected}: "
                "making it again with one apply"
            )
            self.one_apply(self.apply_project(), 1, 1)
            project = self.pr_project(cache, change)
            summary = self.pr_check(project, cache)
        if summary != change.expected:
            raise BenchError(
                f"the pull-request plan's summary is {summary}, expected {change.expected}"
            )
        say(f"  check: plan --format json summary {summary} as expected")
        argv = [*self.orqsync, "-C", str(project), "plan"]
        # 2: a working copy, where an earlier plan of the unchanged repository left the plan
        # cache (.orqsync/state.json.cache) that lets a plan read only the changed file.
        runs = []
        original = (self.prepared.source / change.relpath).read_text(encoding="utf-8")
        for number in range(1, self.args.repeat + 1):
            self.restore_state(project, cache)
            write_text(str(project / change.relpath), original)
            self.runner.run("plan-warm-up", argv)  # records which files are in sync
            write_text(str(project / change.relpath), change.text)
            runs.extend(self._once("plan-pr", argv, number))
        self.pr_plan = runs
        self.results.raw["pr_plan"] = [r.__dict__ for r in runs]
        self.results.add(
            self.ratio_row(
                "2",
                f"Pull-request plan (state in sync, 1 of {self.corpus.files} files changed; "
                "plan cache left by an earlier plan)",
                runs,
                0.1,
            )
        )
        # 2b: a fresh clone (a CI job): no plan cache, only the committed state and its
        # in_sync record, left by the complete apply that wrote it.
        cold = []
        for number in range(1, self.args.repeat + 1):
            self.restore_state(project, cache)
            cold.extend(self._once("plan-pr-fresh-clone", argv, number))
        self.pr_plan_cold = cold
        self.results.raw["pr_plan_fresh_clone"] = [r.__dict__ for r in cold]
        self.results.add(
            self.ratio_row(
                "2b",
                "Pull-request plan in a fresh clone (no plan cache; the state's in_sync record)",
                cold,
                0.1,
            )
        )

    def pr_project(
        self, cache: Path, change: PullRequestChange, name: str = "pull-request"
    ) -> Path:
        project_file = (cache / "orqsync.yaml").read_text(encoding="utf-8")
        project = make_project(self.prepared, name, self.prepared.files, project_file)
        write_text(str(project / change.relpath), change.text)
        return project

    def restore_state(self, project: Path, cache: Path) -> None:
        """Only the committed state.json, as in a fresh clone (no cache a plan may leave)."""
        clear_state(project)
        (project / ".orqsync").mkdir()
        shutil.copyfile(cache / "state.json", project / ".orqsync" / "state.json")

    def pr_check(self, project: Path, cache: Path) -> dict[str, int]:
        self.restore_state(project, cache)
        return self.plan_summary(project, self.workdir / "plan-pr.json")

    # scenario 9

    def scenario_queues(self) -> None:
        """Annotation queues that route spans by rule: every plan reads every file."""
        corpus = self.corpus
        say(f"\n[9] Plans with two annotation queues that route spans by rule ({QUEUE_RULES})")
        # 9a: a full plan, as scenario 1, with the queues to create and fill
        project = self.embedded_project("full-queues", self.prepared.files)
        write_queues(project)
        summary = self.plan_summary(project, self.workdir / "plan-queues.json")
        if summary.get("create") != corpus.annotations or summary.get("queues") != 2:
            raise BenchError(f"the plan with queues has the summary {summary}")
        say(f"  check: plan --format json summary {summary}")
        argv = [*self.orqsync, "-C", str(project), "plan"]
        runs = []
        for number in range(1, self.args.repeat + 1):
            clear_state(project)
            runs.extend(self._once("plan-full-queues", argv, number))
        self.results.raw["full_plan_queues"] = [r.__dict__ for r in runs]
        full = statistics.median(r.seconds for r in self.full_plan)
        median = statistics.median(r.seconds for r in runs)
        self.results.add(
            Row(
                "9a",
                "Full plan, no state, with two queues routing by rule",
                seconds_text(median),
                f"{seconds_text(full)} (scenario 1: the same plan without queues)",
                median / full,
                "≤ 1.15 × scenario 1",
                median / full <= 1.15,
                runs_text([r.seconds for r in runs]),
            )
        )
        # 9b: the pull-request plan of scenario 2b with those queues: no file is left out
        cache = self.state_cache()
        if not (cache / "state.json").is_file():
            say("  no cached state for this corpus: one apply against the emulator makes it")
            self.one_apply(self.apply_project(), 1, 1)
        change = pull_request_change(self.corpus)
        project = self.pr_project(cache, change, "pull-request-queues")
        write_queues(project)
        argv = [*self.orqsync, "-C", str(project), "plan"]
        cold = []
        for number in range(1, self.args.repeat + 1):
            self.restore_state(project, cache)
            cold.extend(self._once("plan-pr-queues", argv, number))
        self.results.raw["pr_plan_queues"] = [r.__dict__ for r in cold]
        self.results.add(
            self.ratio_row(
                "9b",
                "Pull-request plan in a fresh clone with those queues (every file read)",
                cold,
                0.3,
            )
        )

    # scenario 10

    def scenario_reviewers(self) -> None:
        """Three reviewers on every span, resolved by majority: every plan reads every
        reviewer's file with the strict reader (README: not yet incremental)."""
        corpus = self.corpus
        say(
            f"\n[10] Several reviewers: the corpus written by alice, bob and carol "
            f"({3 * corpus.files} files, {3 * corpus.annotations:,} votes), rule majority"
        )
        panel = prepare_panel(self.prepared, self.workdir)
        say(
            f"  panel: {panel.size / 1e6:.1f} MB of YAML; the votes resolve {panel.resolved:,} "
            f"keys, {panel.unresolved:,} are three-way ties"
        )
        project_file = project_yaml("embedded", sources=PANEL_SOURCES, reviews="majority")
        # 10a: a full plan, as scenario 1
        project = make_panel_project(self.prepared, panel, "full-panel", project_file, None)
        summary = self.plan_summary(project, self.workdir / "plan-panel.json", UNRESOLVED_SCRIPT)
        expected = {
            "create": corpus.annotations - panel.unresolved,
            "update": 0,
            "delete": 0,
            "requests": panel.requests,
            "unresolved": panel.unresolved,
        }
        if summary != expected:
            raise BenchError(f"the plan of three reviewers has {summary}, expected {expected}")
        say(
            f"  check: plan --format json summary {summary} as expected (create: every "
            f"annotation but the {summary['unresolved']} listed as not resolved)"
        )
        argv = [*self.orqsync, "-C", str(project), "plan"]
        runs = []
        for number in range(1, self.args.repeat + 1):
            clear_state(project)
            runs.extend(self._once("plan-full-panel", argv, number))
        self.results.raw["full_plan_panel"] = [r.__dict__ for r in runs]
        full = statistics.median(r.seconds for r in self.full_plan)
        median = statistics.median(r.seconds for r in runs)
        self.results.add(
            Row(
                "10a",
                "Full plan, no state, three reviewers per span (majority)",
                seconds_text(median),
                f"{seconds_text(full)} (scenario 1: the same plan with one reviewer)",
                median / full,
                "≤ 1.5 × scenario 1",
                median / full <= 1.5,
                runs_text([r.seconds for r in runs]),
            )
        )
        # 10b: the pull-request plan of a fresh clone, as 2b, after bob changed his votes
        change = panel_change(corpus)
        say(
            f"  pull request: {change.relpath}, bob sides with carol on {change.moved} keys "
            f"and leaves alice and carol on {change.outvoted}"
        )
        cache = self.workdir / f"state-panel-{self.prepared.fingerprint}"
        fresh = False
        if not (cache / "state.json").is_file():
            say("  no cached state for this panel: one apply against the emulator makes it")
            self.one_apply(self.panel_apply_project(panel), 1, 1, cache)
            fresh = True
        else:
            say(f"  state: {cache / 'state.json'} (left by a complete apply of this panel)")
        expected = {**change.expected, "unresolved": panel.unresolved}
        summary: object
        try:
            project, summary = self.panel_pr_check(panel, cache, change)
        except BenchError as error:
            if fresh:
                raise
            summary = f"an error ({str(error).splitlines()[0]})"
        if summary != expected and not fresh:  # as in scenario 2: the state format may change
            say(
                f"  the cached state gives {summary}, expected {expected}: "
                "making it again with one apply"
            )
            self.one_apply(self.panel_apply_project(panel), 1, 1, cache)
            project, summary = self.panel_pr_check(panel, cache, change)
        if summary != expected:
            raise BenchError(
                f"the pull-request plan of three reviewers has {summary}, expected {expected}"
            )
        say(f"  check: plan --format json summary {summary} as expected")
        argv = [*self.orqsync, "-C", str(project), "plan"]
        cold = []
        for number in range(1, self.args.repeat + 1):
            self.restore_state(project, cache)
            cold.extend(self._once("plan-pr-panel", argv, number))
        self.results.raw["pr_plan_panel"] = [r.__dict__ for r in cold]
        reference = statistics.median(r.seconds for r in self.pr_plan_cold)
        median = statistics.median(r.seconds for r in cold)
        self.results.add(
            Row(
                "10b",
                "Pull-request plan in a fresh clone, three reviewers (one reviewer's file changed)",
                seconds_text(median),
                f"{seconds_text(reference)} (scenario 2b: the same plan with one reviewer)",
                median / reference,
                "≤ 1.5 × scenario 2b",
                median / reference <= 1.5,
                runs_text([r.seconds for r in cold]),
            )
        )

    def panel_pr_check(
        self, panel: Panel, cache: Path, change: PanelChange
    ) -> tuple[Path, dict[str, int]]:
        """10b's project, a fresh clone with the cached state, and its plan's summary."""
        project_file = (cache / "orqsync.yaml").read_text(encoding="utf-8")
        project = make_panel_project(
            self.prepared, panel, "pull-request-panel", project_file, change
        )
        self.restore_state(project, cache)
        out = self.workdir / "plan-pr-panel.json"
        return project, self.plan_summary(project, out, UNRESOLVED_SCRIPT)

    def panel_apply_project(self, panel: Panel) -> Path:
        """Scenario 10's project against the emulator, for the apply that makes its state."""
        project = make_panel_project(self.prepared, panel, "apply-panel", "", None)
        url = self.start_emulator(project / "definitions.yaml")
        write_text(
            str(project / "orqsync.yaml"),
            project_yaml(
                url,
                api_key_env=KEY_ENV,
                parallelism=PARALLELISM,
                sources=PANEL_SOURCES,
                reviews="majority",
            ),
        )
        return project

    # scenario 5

    def scenario_memory(self) -> None:
        say("\n[5] Memory: peak RSS of the plans of scenarios 1 and 2")
        for row_id, name, runs, goal in (
            ("5a", "Peak RSS, full plan (scenario 1)", self.full_plan, 500),
            ("5b", "Peak RSS, pull-request plan (scenario 2)", self.pr_plan, 250),
            ("5c", "Peak RSS, pull-request plan in a fresh clone (2b)", self.pr_plan_cold, 250),
        ):
            values = [r.rss_mb for r in runs]
            median = statistics.median(values)
            self.results.add(
                Row(
                    row_id,
                    name,
                    f"{median:.0f} MB",
                    "",
                    None,
                    f"≤ {goal} MB",
                    median <= goal,
                    runs_text(values, "MB"),
                )
            )


# Reports ---------------------------------------------------------------------------------------


def text_table(rows: list[Row]) -> str:
    head = ["#", "scenario", "measured", "reference", "ratio", "goal", "met"]
    body = [
        [
            row.id,
            row.scenario,
            row.measured,
            row.reference,
            "" if row.ratio is None else f"{row.ratio:.2f}",
            row.goal,
            {True: "yes", False: "NO", None: ""}[row.met],
        ]
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)) for line in [head]]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(b)) for b in body)
    return "\n".join(lines)


def markdown(meta: dict[str, object], rows: list[Row]) -> str:
    corpus = meta["corpus"]
    assert isinstance(corpus, dict)
    out = [
        DOC_START,
        f"### Results of {meta['date']}",
        "",
        f"- Code: {meta['code']}.",
        f"- Command: `{meta['command']}` (took {meta['duration']}).",
        f"- Corpus: {corpus['files']:,} files × {corpus['spans']:,} spans × {corpus['keys']} "
        f"keys = {corpus['annotations']:,} annotations, {corpus['megabytes']:.1f} MB of YAML.",
        f"- Machine: {meta['machine_text']}{load_text(meta['load'])}.",
        f"- Figures: median of {meta['repeat']} runs (apply: {meta['apply_repeat']}, "
        f"start-up: {meta['startup_repeat']}); the individual runs are in the last column.",
        "",
        "| # | scenario | measured | reference | ratio | goal | met | runs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}"
        met = {True: "yes", False: "**no**", None: ""}[row.met]
        cells = [row.id, row.scenario, row.measured, row.reference, ratio, row.goal, met, row.runs]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    met_count = sum(1 for row in rows if row.met)
    judged = sum(1 for row in rows if row.met is not None)
    out.append("")
    out.append(f"Goals met: {met_count} of {judged}.")
    out.append(DOC_END)
    return "\n".join(out) + "\n"


def row_order(row: Row) -> tuple[int, str]:
    """By scenario number (10a after 9b), then by id."""
    digits = len(row.id) - len(row.id.lstrip("0123456789"))
    return int(row.id[:digits]), row.id


def load_text(load: object) -> str:
    """The 1-minute load average before and after: other work on the machine skews figures."""
    if not isinstance(load, list) or load[0] is None:
        return ""
    return f"; load average {load[0][0]:.1f} before the run, {load[1][0]:.1f} after"


def update_doc(path: Path, block: str) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    start, end = text.find(DOC_START), text.find(DOC_END)
    if start == -1 or end == -1 or end < start:
        raise BenchError(f"{path}: no {DOC_START} ... {DOC_END} section to replace")
    path.write_text(text[:start] + block + text[end + len(DOC_END) + 1 :], encoding="utf-8")


# Main ------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="The orqsync performance benchmark (see BENCHMARKS.md)."
    )
    parser.add_argument("--files", type=int, help="annotation files (default 100; quick 10)")
    parser.add_argument("--spans", type=int, help="spans per file (default 1000; quick 200)")
    parser.add_argument("--keys", type=int, default=4, help="keys per span (default 4)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generator")
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario (default 3)")
    parser.add_argument("--apply-repeat", type=int, help="runs of scenario 4 (default: --repeat)")
    parser.add_argument(
        "--startup-repeat", type=int, help="runs of scenario 7 (default 20; quick 5)"
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(map(str, ALL_SCENARIOS)),
        help="which scenarios, e.g. 1,2 (default all)",
    )
    parser.add_argument(
        "--workdir",
        help="where the corpus, projects, logs and results.json go "
        "(default: $TMPDIR/orqsync-bench; the corpus is cached there)",
    )
    parser.add_argument("--quick", action="store_true", help="a small corpus, for a smoke run")
    parser.add_argument(
        "--update-doc",
        nargs="?",
        const=str(REPO / "BENCHMARKS.md"),
        metavar="PATH",
        help="rewrite the results section of BENCHMARKS.md (or PATH) with this run",
    )
    args = parser.parse_args(argv)
    args.files = args.files or (10 if args.quick else 100)
    args.spans = args.spans or (200 if args.quick else 1000)
    args.apply_repeat = args.apply_repeat or args.repeat
    args.startup_repeat = args.startup_repeat or (5 if args.quick else 20)
    try:
        chosen = {int(part) for part in args.scenarios.split(",") if part.strip()}
    except ValueError:
        parser.error(f"--scenarios: {args.scenarios!r} is not a list of numbers like 1,2,7")
    if not chosen or not chosen <= set(ALL_SCENARIOS):
        parser.error(f"--scenarios: choose among {','.join(map(str, ALL_SCENARIOS))}")
    if 5 in chosen or 10 in chosen:
        chosen |= {1, 2}
    if 6 in chosen or 9 in chosen:
        chosen.add(1)
    args.chosen = chosen
    for name in ("files", "spans", "keys", "repeat", "apply_repeat", "startup_repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def command_text(argv: list[str]) -> str:
    python = sys.executable
    try:
        relative = os.path.relpath(python, Path.cwd())
        python = python if relative.startswith("..") else relative
    except ValueError:
        pass
    script = os.path.relpath(__file__, Path.cwd())
    return shlex.join([python, script, *argv])


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    # SIGTERM (and SIGINT even where a shell ignores it) unwind, stopping what we started.
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGINT, _interrupted)
    started = time.perf_counter()
    workdir = Path(args.workdir or Path(tempfile.gettempdir()) / "orqsync-bench").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    corpus = Corpus(args.files, args.spans, args.keys, args.seed)
    info = machine()
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    code = git_info()
    say(f"orqsync benchmark: {git_text(code)}")
    say(f"Machine: {machine_text(info)}")
    say(f"Work directory: {workdir}")
    # Measure orqsync as an installed package runs: with its modules' bytecode written. Where
    # PYTHONDONTWRITEBYTECODE is set (some CI images set it), every command would otherwise
    # compile the modules changed since the last write, each time.
    compileall.compile_dir(str(REPO / "orqsync"), quiet=1)
    prepared = prepare_corpus(corpus, workdir)
    bench = Bench(args, workdir, prepared)
    order = [
        (7, bench.scenario_startup),
        (1, bench.scenario_full_plan),
        (3, bench.scenario_validate),
        (6, bench.scenario_growth),
        (4, bench.scenario_apply),
        (2, bench.scenario_pull_request),
        (9, bench.scenario_queues),
        (10, bench.scenario_reviewers),
        (5, bench.scenario_memory),
        (8, bench.scenario_pacing),
    ]
    try:
        for number, scenario in order:
            if number in args.chosen:
                scenario()
    except BenchError as error:
        say(f"\nBENCHMARK STOPPED: {error}")
        return 1
    except KeyboardInterrupt:
        say("\nBENCHMARK INTERRUPTED")
        return 130
    finally:
        bench.stop_emulator()
    rows = sorted(bench.results.rows, key=row_order)
    duration = time.perf_counter() - started
    meta: dict[str, object] = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "code": git_text(code),
        "git": code,
        "command": command_text(argv),
        "duration": f"{duration / 60:.0f} min" if duration >= 90 else f"{duration:.0f} s",
        "machine": info,
        "machine_text": machine_text(info),
        "corpus": {
            "files": corpus.files,
            "spans": corpus.spans,
            "keys": corpus.keys,
            "seed": corpus.seed,
            "annotations": corpus.annotations,
            "megabytes": prepared.size / 1e6,
            "quoted_ids": prepared.quoted_ids,
            "quoted_texts": prepared.quoted_texts,
        },
        "load": [load_before, os.getloadavg() if load_before is not None else None],
        "repeat": args.repeat,
        "apply_repeat": args.apply_repeat,
        "startup_repeat": args.startup_repeat,
    }
    document = {**meta, "rows": [row.__dict__ for row in rows], "raw": bench.results.raw}
    results_path = workdir / "results.json"
    results_path.write_text(json.dumps(document, indent=1, ensure_ascii=False), encoding="utf-8")
    block = markdown(meta, rows)
    say("\n" + text_table(rows))
    say(f"\nResults as JSON: {results_path}")
    say("\nFor BENCHMARKS.md:\n")
    print(block, end="", flush=True)
    if args.update_doc:
        try:
            update_doc(Path(args.update_doc), block)
        except BenchError as error:
            say(f"\n{error}")
            return 1
        say(f"\nUpdated {args.update_doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
