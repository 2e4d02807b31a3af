"""The state file: the record of what orqsync wrote, and the journal that keeps it honest.

There is no API that reads annotations back, so the state is the only memory of what was
written. It is JSON with one span per line (sorted), so that git diffs and merges stay readable.

Progress during an apply goes to a journal beside the state (`state.json.journal`): one JSON line
per request that succeeded, written at once and fsynced (by the journal's flusher) before the
request counts as done, so the cost per request does not grow with the state. At the end of a
run the journal is folded into the state, which is written atomically (temp file, fsync,
rename), and the journal is removed.
After a crash, the next command folds the journal it finds. A journal names the lineage and
serial of the state it extends; one that does not match (already folded) is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from typing import Any

from orqsync.errors import StateError
from orqsync.source.project import Settings
from orqsync.state.codec import parse_state, render_state, restore_hint
from orqsync.state.disk import _read_bytes, atomic_write, fsync_dir
from orqsync.state.journal import Journal
from orqsync.state.model import InSync, State, _dumps
from orqsync.state.snapshot import StateSnapshot, in_sync_start


class StateFile:
    """The state file on disk with its journal and backup."""

    def __init__(self, path: str, display: str | None = None) -> None:
        self.path = path
        self.display = display or path
        self.journal_path = path + ".journal"
        self.backup_path = path + ".backup"

    @classmethod
    def of(cls, settings: Settings) -> StateFile:
        """The project's state file, named in messages as the project shows paths."""
        return cls(settings.state_path, settings.display(settings.state_path))

    def exists(self) -> bool:
        return os.path.exists(self.path)

    def content_hash(self) -> str:
        """Hash of the state file and any journal: what a saved plan pins."""
        digest = hashlib.sha256()
        for path in (self.path, self.journal_path):
            if os.path.exists(path):
                digest.update(_read_bytes(path))
            digest.update(b"\0")
        return digest.hexdigest()

    def snapshot(self) -> StateSnapshot:
        """The state file as read once, for planning. With a journal left by an interrupted
        apply, the whole state is loaded and the journal folded in."""
        raw = _read_bytes(self.path) if os.path.exists(self.path) else None
        journal = _read_bytes(self.journal_path) if self.has_journal() else None
        digest = hashlib.sha256()
        body_hash = ""
        if raw is not None:
            start = in_sync_start(raw)
            if start:  # the hash of the text before the record, on the way (one pass)
                digest.update(memoryview(raw)[:start])
                body_hash = digest.copy().hexdigest()
                digest.update(memoryview(raw)[start:])
            else:
                digest.update(raw)
        digest.update(b"\0")
        if journal is not None:
            digest.update(journal)
        digest.update(b"\0")
        whole = self.load() if journal is not None else None
        return StateSnapshot(raw, digest.hexdigest(), self.display, whole, body_hash)

    def load(self) -> State:
        """The state with any journal left by an interrupted apply folded in (in memory)."""
        if os.path.exists(self.path):
            try:
                with open(self.path, encoding="utf-8") as handle:
                    text = handle.read()
            except UnicodeDecodeError:
                raise StateError(
                    f"{self.display}: the state file is not UTF-8 text",
                    restore_hint(self.path),
                ) from None
            state = parse_state(text, self.display)
        else:
            state = State.new()
        for entry in self.pending(state):
            state.fold(entry)
        return state

    def pending(self, state: State) -> list[dict[str, Any]]:
        """Journal entries that extend `state` (an interrupted apply's finished requests)."""
        entries = self._journal_entries()
        if not entries or not _extends(entries[0], state):
            return []  # none, or written against another state (already folded)
        return entries[1:]

    def recovery(self, state: State) -> tuple[int, int]:
        """(finished, in flight) requests of an interrupted apply that extends `state`."""
        entries = self.pending(state)
        started = {e["req"] for e in entries if e["op"] == "intent"}
        finished = {e.get("req") for e in entries if e["op"] != "intent"}
        return len(finished), len(started - finished)

    def _journal_entries(self) -> list[dict[str, Any]]:
        """Every whole line of the journal; a torn last line never counted as done."""
        if not os.path.exists(self.journal_path):
            return []
        entries: list[dict[str, Any]] = []
        with open(self.journal_path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if not line.endswith("\n"):
                    break
                try:
                    entries.append(json.loads(line))
                except json.JSONDecodeError:
                    break
        return entries

    def has_journal(self) -> bool:
        return os.path.exists(self.journal_path)

    def write(self, state: State, in_sync: InSync | None = None) -> None:
        """Bump the serial and write atomically; keep the previous file as a backup.
        `in_sync`: only a complete apply knows which files the state is now in sync with."""
        state.serial += 1
        if not state.lineage:
            state.lineage = str(uuid.uuid4())
        directory = os.path.dirname(self.path) or "."
        os.makedirs(directory, exist_ok=True)
        text = render_state(state, in_sync)
        if os.path.exists(self.path):
            atomic_write(self.backup_path, _read_bytes(self.path))
        atomic_write(self.path, text.encode("utf-8"))
        if os.path.exists(self.journal_path):
            os.unlink(self.journal_path)
        fsync_dir(directory)

    def open_journal(self, state: State) -> Journal:
        """Start the journal of an apply against `state`, or continue the one that extends it."""
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        entries = self._journal_entries()
        if entries and _extends(entries[0], state):
            keep = "".join(_dumps(entry) + "\n" for entry in entries)
            atomic_write(self.journal_path, keep.encode("utf-8"))  # drops a torn tail
            return Journal(self.journal_path, header=None, continued=len(entries) > 1)
        return Journal(self.journal_path, header=_begin(state), continued=False)

    def discard_journal(self) -> None:
        if os.path.exists(self.journal_path):
            os.unlink(self.journal_path)


def _begin(state: State) -> dict[str, object]:
    return {"op": "begin", "lineage": state.lineage, "serial": state.serial}


def _extends(header: dict[str, Any], state: State) -> bool:
    return (
        header.get("op") == "begin"
        and header.get("lineage") == state.lineage
        and header.get("serial") == state.serial
    )
