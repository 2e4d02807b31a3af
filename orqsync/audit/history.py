"""The apply history: one JSON line per apply (and per import) beside the state, append-only.

`.orqsync/state.json` has its history in `.orqsync/state.history.jsonl`. Each line says who ran
what and when, against which state (lineage, serial before and after), with which plan, and
how it ended. A line is appended and fsynced under the state lock at the end of every apply
that sent a request, had one refused, or was stopped by an error, so partial and interrupted
applies are recorded too. The file is meant to be committed with the state: git then carries
both the labels and the record of the runs that wrote them. It never holds the API key.
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass, field, fields
from typing import Any

from orqsync.errors import StateError
from orqsync.state.disk import fsync_dir

SUFFIX = ".history.jsonl"
COMPLETE = "complete"
PARTIAL = "partial"


def history_path(state_path: str) -> str:
    """`<state dir>/<state file stem>.history.jsonl`."""
    directory, name = os.path.split(state_path)
    return os.path.join(directory, os.path.splitext(name)[0] + SUFFIX)


def utc_now(now: datetime.datetime | None = None) -> str:
    """A UTC time to the second, as `2026-11-23T10:00:00Z`."""
    moment = now or datetime.datetime.now(datetime.timezone.utc)
    moment = moment.astimezone(datetime.timezone.utc).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Counts:
    """The plan's changes and requests, and what became of the requests."""

    create: int = 0
    update: int = 0
    delete: int = 0
    requests: int = 0
    done: int = 0
    refused: int = 0
    left: int = 0

    def to_json(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class Entry:
    """One apply or import, as a history line."""

    time: str  # when it ended
    operation: str  # apply | import
    outcome: str  # complete | partial
    who: str
    commit: str
    plan_id: str
    lineage: str
    serial_before: int
    serial_after: int
    counts: Counts = field(default_factory=Counts)
    stopped: str = ""  # why requests were left: max requests, max duration, interrupted, error
    started: str = ""
    run_url: str = ""
    detail: str = ""  # what `state rm` forgot: "TRACE/SPAN" or "TRACE/SPAN: key, key"

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self)}
        data["counts"] = self.counts.to_json()
        if not self.detail:
            del data["detail"]  # the lines of applies and imports stay as they were
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        counts = data.get("counts") or {}
        return cls(
            time=str(data["time"]),
            operation=str(data.get("operation", "apply")),
            outcome=str(data["outcome"]),
            who=str(data.get("who", "")),
            commit=str(data.get("commit", "")),
            plan_id=str(data.get("plan_id", "")),
            lineage=str(data.get("lineage", "")),
            serial_before=int(data.get("serial_before", 0)),
            serial_after=int(data.get("serial_after", 0)),
            counts=Counts(**{f.name: int(counts.get(f.name, 0)) for f in fields(Counts)}),
            stopped=str(data.get("stopped", "")),
            started=str(data.get("started", "")),
            run_url=str(data.get("run_url", "")),
            detail=str(data.get("detail", "")),
        )


def entry_line(entry: Entry) -> str:
    """The line written for `entry`: sorted keys, compact, UTF-8 text."""
    return (
        json.dumps(entry.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        + "\n"
    )


def append_entry(path: str, entry: Entry) -> None:
    """Append one line and make it durable. A torn last line (a crash mid-write) stays apart."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    created = not os.path.exists(path)
    data = entry_line(entry).encode("utf-8")
    with open(path, "ab+") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size:
            handle.seek(size - 1)
            if handle.read(1) != b"\n":
                data = b"\n" + data
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    if created:
        fsync_dir(directory)


@dataclass(frozen=True, slots=True)
class History:
    """The entries of a history file, oldest first, and the lines that could not be read."""

    entries: tuple[Entry, ...]
    unreadable: tuple[int, ...] = ()


def load_history(path: str, display: str | None = None) -> History:
    """Every readable line of the history; a missing file is an empty history."""
    shown = display or path
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return History(())
    except UnicodeDecodeError:
        raise StateError(
            f"{shown}: the history file is not UTF-8 text", "restore it from git"
        ) from None
    return parse_history(lines)


def parse_history(lines: list[str]) -> History:
    """The entries of a history file's lines; the numbers of the lines that are not one."""
    entries = []
    unreadable = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entries.append(Entry.from_json(json.loads(line)))
        except (ValueError, KeyError, TypeError, AttributeError):
            unreadable.append(number)
    return History(tuple(entries), tuple(unreadable))


def render_history_text(entries: list[Entry]) -> str:
    """One line per entry, as given (the CLI passes newest first)."""
    out = []
    for entry in entries:
        counts = entry.counts
        what = (
            f"{counts.create} to add, {counts.update} to change, {counts.delete} to remove; "
            f"{counts.done}/{counts.requests} requests done"
        )
        if counts.refused:
            what += f", {counts.refused} refused"
        if counts.left:
            what += f", {counts.left} left"
        if entry.operation == "import":
            what = f"{counts.create} labels adopted, no request sent"
        elif entry.operation == "state rm":
            what = f"forgot {entry.detail} ({counts.delete} labels), no request sent"
        outcome = entry.outcome + (f" ({entry.stopped})" if entry.stopped else "")
        commit = f"commit {short_sha(entry.commit)}" if entry.commit else "no commit"
        line = (
            f"{entry.time}  {entry.operation} {outcome}  plan {entry.plan_id}  "
            f"serial {entry.serial_before} -> {entry.serial_after}  {what}  "
            f"by {entry.who or 'unknown'}, {commit}"
        )
        if entry.run_url:
            line += f"  {entry.run_url}"
        out.append(line)
    return "".join(line + "\n" for line in out)


def short_sha(commit: str) -> str:
    """A full hex sha shortened to 7 characters; anything else as it is."""
    if len(commit) == 40 and all(c in "0123456789abcdef" for c in commit.lower()):
        return commit[:7]
    return commit
