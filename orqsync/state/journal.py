"""The journal: each successful request, fsynced before it counts as done."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import IO

from orqsync.errors import StateError
from orqsync.state.model import _dumps


class Journal:
    """Append-only record of finished requests.

    `record` returns once its line is durable. `submit` writes the line at once (so that it
    outlives the process) and returns; a flusher thread fsyncs what was submitted, a batch at
    a time, and only then hands it to `on_durable`, so that a request counts as done only
    once it is on disk while the threads that send requests never wait for a disk.
    """

    def __init__(self, path: str, header: dict[str, object] | None, continued: bool) -> None:
        self.continued = continued  # it holds work of an earlier, interrupted apply
        self.path = path
        self._lock = threading.Lock()  # one writer at a time
        self._handle: IO[str] = open(path, "a" if header is None else "w", encoding="utf-8")  # noqa: SIM115
        self._submitted = threading.Condition()
        self._pending: list[object] = []
        self._closing = False
        self._flusher: threading.Thread | None = None
        self._on_durable: Callable[[list[object]], None] | None = None
        self._failure: BaseException | None = None
        if header is not None:
            self.record(header)

    def start(self, on_durable: Callable[[list[object]], None]) -> None:
        """Start the flusher that passes the tokens of durable submissions to `on_durable`."""
        self._on_durable = on_durable
        self._flusher = threading.Thread(target=self._flush, name="journal", daemon=True)
        self._flusher.start()

    def submit(self, entry: dict[str, object], token: object) -> None:
        """Write a success now; `token` reaches `on_durable` once the line is on disk.
        Raises the flusher's failure, if it had one, so that the run stops at once (the line
        is written all the same: the request did succeed, and the next apply folds it in)."""
        self._write(_dumps(entry) + "\n")
        if self._failure is not None:
            raise self._failure
        with self._submitted:
            self._pending.append(token)
            self._submitted.notify()

    def _flush(self) -> None:
        assert self._on_durable is not None
        try:
            while True:
                with self._submitted:
                    while not self._pending and not self._closing:
                        self._submitted.wait()
                    if not self._pending:
                        return  # closing, and everything submitted is done
                    batch, self._pending = self._pending, []
                try:
                    os.fsync(self._handle.fileno())  # covers every line written before it
                except OSError as exc:
                    self._failure = StateError(
                        f"{self.path}: the journal could not be written to disk ({exc.strerror})",
                        "fix the disk, then run apply again: the requests sent so far are "
                        "in the journal, and the next apply finishes the work",
                    )
                    return
                self._on_durable(batch)
        except BaseException as exc:  # raised by submit() and close(): nothing passes silently
            self._failure = exc

    def _write(self, line: str) -> None:
        with self._lock:
            self._handle.write(line)
            self._handle.flush()  # from here on, the line outlives the process

    def intend(self, request_id: str, extra: dict[str, object] | None = None) -> None:
        """A request is about to be sent. Not fsynced: losing it loses only a statistic, and
        for a queue's create (`extra` names it) a record that makes the next create look for
        the queue before it makes one; the create is sent after the line is written, so a
        crash between the two at worst makes the next apply look in vain."""
        if extra:
            self._write(_dumps({"op": "intent", "req": request_id, **extra}) + "\n")
            return
        # What _dumps gives for {"op": "intent", "req": request_id}: ids are hex, digits, dots.
        self._write(f'{{"op":"intent","req":"{request_id}"}}\n')

    def record(self, entry: dict[str, object]) -> None:
        """Write a line and wait until it is on disk (the header; used before the flusher)."""
        self._write(_dumps(entry) + "\n")
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        """Make every submission durable and done, then close; re-raise a flusher failure."""
        if self._flusher is not None:
            with self._submitted:
                self._closing = True
                self._submitted.notify()
            self._flusher.join()
        self._handle.close()
        if self._failure is not None:
            raise self._failure
