"""SQLite storage of annotations, corrections of evaluator results, feedback records and (in
queue_store.py, on the same connection) annotation queues and their items.

One connection shared by all threads behind one lock. Every write is one transaction and commits
before the API answers, so a 200 is on disk. With WAL and synchronous=NORMAL a commit is a write
to the log without an fsync: it survives a killed process (not a power cut) and costs
microseconds, which keeps 100,000 requests cheap.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence

from . import queue_store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS annotations (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    metadata TEXT NOT NULL,
    PRIMARY KEY (trace_id, span_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS corrections (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_annotation_id TEXT NOT NULL,
    value TEXT NOT NULL,
    explanation TEXT,
    metadata TEXT NOT NULL,
    PRIMARY KEY (trace_id, span_id, parent_annotation_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS feedback (
    id TEXT PRIMARY KEY,
    record TEXT NOT NULL
);
"""
# 2 added the corrections table, 3 the queue tables; CREATE IF NOT EXISTS upgrades older files.
_SCHEMA_VERSION = 3
_TABLES = ("annotations", "corrections", "feedback", *queue_store.TABLES)


class StoreError(Exception):
    """The database file cannot be opened or set up; `reason` says why in a few words:
    "no_folder", "is_folder", "not_database" or "other"."""

    def __init__(self, path: str, reason: str, problem: str) -> None:
        super().__init__(f"cannot open the database {path}: {problem}")
        self.path = path
        self.reason = reason


def _open_error(path: str, exc: sqlite3.Error) -> StoreError:
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        return StoreError(path, "is_folder", "it is a folder")
    if not os.path.isdir(folder):
        return StoreError(path, "no_folder", f"the folder {folder} does not exist")
    if isinstance(exc, sqlite3.DatabaseError) and "not a database" in str(exc):
        return StoreError(path, "not_database", "the file is not an SQLite database")
    return StoreError(path, "other", str(exc))


# A correction as the store takes it: (parent_annotation_id, value, explanation or None).
CorrectionRow = tuple[str, object, str | None]


class Store:
    """Annotations keyed by (trace_id, span_id, key), corrections keyed by (trace_id, span_id,
    parent_annotation_id) and feedback records keyed by id; `queues` holds the annotation
    queues and their items.

    A file that cannot be opened or set up raises StoreError.
    """

    def __init__(self, path: str = ":memory:") -> None:
        self._lock = threading.Lock()
        try:
            # timeout: another process may hold the file's write lock (embedded use, two
            # commands).
            self._db = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=10.0
            )
        except sqlite3.Error as exc:
            raise _open_error(path, exc) from exc
        try:
            if path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA + queue_store.SCHEMA)
            self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            self.queues = queue_store.QueueTables(self._db, self._lock)
        except sqlite3.Error as exc:
            self._db.close()
            raise _open_error(path, exc) from exc
        except BaseException:
            self._db.close()
            raise

    def put_annotations(
        self,
        trace_id: str,
        span_id: str,
        items: Sequence[tuple[str, object]],
        metadata: Mapping[str, object],
        corrections: Sequence[CorrectionRow] = (),
    ) -> None:
        """Set every (key, value) and every correction on the span in one transaction,
        replacing existing values and corrections."""
        meta = _dump(metadata)
        rows = [(trace_id, span_id, key, _dump(value), meta) for key, value in items]
        fixes = [
            (trace_id, span_id, parent_id, _dump(value), explanation, meta)
            for parent_id, value, explanation in corrections
        ]
        with self._lock:
            self._transaction(
                (
                    "INSERT INTO annotations (trace_id, span_id, key, value, metadata) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (trace_id, span_id, key) "
                    "DO UPDATE SET value = excluded.value, metadata = excluded.metadata",
                    rows,
                ),
                (
                    "INSERT INTO corrections (trace_id, span_id, parent_annotation_id, value, "
                    "explanation, metadata) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (trace_id, span_id, parent_annotation_id) "
                    "DO UPDATE SET value = excluded.value, explanation = excluded.explanation, "
                    "metadata = excluded.metadata",
                    fixes,
                ),
            )

    def delete_annotations(
        self, trace_id: str, span_id: str, keys: Iterable[str], parent_ids: Iterable[str] = ()
    ) -> None:
        """Remove the keys' values and the parent ids' corrections from the span in one
        transaction; absent ones are no-ops."""
        rows = [(trace_id, span_id, key) for key in keys]
        fixes = [(trace_id, span_id, parent_id) for parent_id in parent_ids]
        with self._lock:
            self._transaction(
                ("DELETE FROM annotations WHERE trace_id = ? AND span_id = ? AND key = ?", rows),
                (
                    "DELETE FROM corrections "
                    "WHERE trace_id = ? AND span_id = ? AND parent_annotation_id = ?",
                    fixes,
                ),
            )

    def annotations(
        self, trace_id: str | None = None, span_id: str | None = None
    ) -> list[dict[str, object]]:
        """All stored annotations, sorted by trace, span and key, optionally filtered."""
        sql = "SELECT trace_id, span_id, key, value, metadata FROM annotations"
        where, params = _filter(trace_id, span_id)
        with self._lock:
            cursor = self._db.execute(f"{sql}{where} ORDER BY trace_id, span_id, key", params)
            rows = cursor.fetchall()
        return [
            {
                "trace_id": row[0],
                "span_id": row[1],
                "key": row[2],
                "value": json.loads(row[3]),
                "metadata": json.loads(row[4]),
            }
            for row in rows
        ]

    def corrections(
        self, trace_id: str | None = None, span_id: str | None = None
    ) -> list[dict[str, object]]:
        """All stored corrections, sorted by trace, span and parent id, optionally filtered."""
        sql = (
            "SELECT trace_id, span_id, parent_annotation_id, value, explanation, metadata "
            "FROM corrections"
        )
        where, params = _filter(trace_id, span_id)
        order = " ORDER BY trace_id, span_id, parent_annotation_id"
        with self._lock:
            rows = self._db.execute(f"{sql}{where}{order}", params).fetchall()
        return [
            {
                "trace_id": row[0],
                "span_id": row[1],
                "parent_annotation_id": row[2],
                "value": json.loads(row[3]),
                "explanation": row[4],
                "metadata": json.loads(row[5]),
            }
            for row in rows
        ]

    def put_feedback(self, record: Mapping[str, object]) -> None:
        """Store a feedback record, replacing any record with the same id."""
        with self._lock:
            self._transaction(
                (
                    "INSERT INTO feedback (id, record) VALUES (?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET record = excluded.record",
                    [(record["id"], _dump(record))],
                )
            )

    def remove_feedback(self, record_id: str, trace_id: str) -> bool:
        """Remove the record with this id on this trace; False when there is none."""
        with self._lock:
            row = self._db.execute("SELECT record FROM feedback WHERE id = ?", (record_id,))
            found = row.fetchone()
            if found is None or json.loads(found[0]).get("trace_id") != trace_id:
                return False
            self._transaction(("DELETE FROM feedback WHERE id = ?", [(record_id,)]))
        return True

    def feedback(self) -> list[dict[str, object]]:
        """All feedback records in the order they were first stored."""
        with self._lock:
            rows = self._db.execute("SELECT record FROM feedback ORDER BY rowid").fetchall()
        return [json.loads(row[0]) for row in rows]

    def counts(self) -> dict[str, int]:
        """How many annotations, corrections, feedback records, queues and queue items are
        stored, by table name."""
        with self._lock:
            return {
                table: self._db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in _TABLES
            }

    def reset(self) -> None:
        """Delete everything."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for table in _TABLES:
                    self._db.execute(f"DELETE FROM {table}")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        """Close the database; the store is unusable afterwards."""
        with self._lock:
            self._db.close()

    def _transaction(self, *statements: tuple[str, Sequence[tuple[object, ...]]]) -> None:
        # Caller holds the lock. One transaction per request: all rows or none.
        self._db.execute("BEGIN")
        try:
            for sql, rows in statements:
                if rows:
                    self._db.executemany(sql, rows)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def _filter(trace_id: str | None, span_id: str | None) -> tuple[str, list[str]]:
    """A WHERE clause (or nothing) on trace and span, and its parameters."""
    clauses, params = [], []
    if trace_id is not None:
        clauses.append("trace_id = ?")
        params.append(trace_id)
    if span_id is not None:
        clauses.append("span_id = ?")
        params.append(span_id)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _dump(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
