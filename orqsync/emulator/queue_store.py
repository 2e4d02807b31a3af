"""SQLite tables of annotation queues and their items, on the Store's connection and lock.

`seq` (never reused) orders both tables: queues list newest first, items in the order they were
added, and a cursor is the seq of the object it names. Every write is one transaction.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .ids import new_ulid
from .queues import PageRequest

SCHEMA = """
CREATE TABLE IF NOT EXISTS queues (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    project_id TEXT NOT NULL,
    human_review_ids TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS queue_items (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    queue_id TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    UNIQUE (queue_id, trace_id, span_id)
);
CREATE INDEX IF NOT EXISTS queue_items_by_queue ON queue_items (queue_id, seq);
"""
TABLES = ("queues", "queue_items")

_QUEUE_COLUMNS = (
    "q.id, q.display_name, q.description, q.project_id, q.human_review_ids, q.created, "
    "q.updated, (SELECT count(*) FROM queue_items i WHERE i.queue_id = q.id)"
)
# The keys annotated on the item's span: what used_human_review_ids is made of.
_ITEM_COLUMNS = (
    "i.id, i.queue_id, i.trace_id, i.span_id, (SELECT json_group_array(key) FROM "
    "(SELECT key FROM annotations a WHERE a.trace_id = i.trace_id AND a.span_id = i.span_id "
    "ORDER BY key))"
)


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One stored queue and how many items it holds."""

    id: str
    display_name: str
    description: str
    project_id: str
    human_review_ids: tuple[str, ...]
    created: str
    updated: str
    items_count: int


@dataclass(frozen=True, slots=True)
class ItemRow:
    """One stored item and the definition keys annotated on its span (sorted)."""

    id: str
    queue_id: str
    trace_id: str
    span_id: str
    keys: tuple[str, ...]


class UnknownCursor(Exception):
    """A page cursor that names no object of the list; `name` is the query parameter."""

    def __init__(self, name: str, cursor: str) -> None:
        super().__init__(f"{name}={cursor}")
        self.name = name
        self.cursor = cursor


class QueueTables:
    """Queues and items; every method takes the lock it shares with the Store."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock) -> None:
        self._db = db
        self._lock = lock
        # SQLite's lower() folds ASCII only; the search folds like Python.
        db.create_function("casefold", 1, _casefold, deterministic=True)

    def create(self, fields: dict[str, str], now: str) -> QueueRow:
        """Store a new queue with a fresh id; return it."""
        queue_id = new_ulid()
        with self._lock, _transaction(self._db):
            self._db.execute(
                "INSERT INTO queues (id, display_name, description, project_id, "
                "human_review_ids, created, updated) VALUES (?, ?, ?, ?, '[]', ?, ?)",
                (
                    queue_id,
                    fields["display_name"],
                    fields["description"],
                    fields["project_id"],
                    now,
                    now,
                ),
            )
            row = self._queue(queue_id)
        assert row is not None  # just inserted
        return row

    def get(self, queue_id: str) -> QueueRow | None:
        """The queue, or None."""
        with self._lock:
            return self._queue(queue_id)

    def update(self, queue_id: str, changes: dict[str, object], now: str) -> QueueRow | None:
        """Apply the checked changes (none: leave `updated` alone); None for an unknown queue."""
        columns = {
            name: json.dumps(value) if name == "human_review_ids" else value
            for name, value in changes.items()
        }
        with self._lock, _transaction(self._db):
            if self._queue(queue_id) is None:
                return None
            if columns:
                assignments = ", ".join(f"{name} = ?" for name in columns)
                self._db.execute(
                    f"UPDATE queues SET {assignments}, updated = ? WHERE id = ?",
                    (*columns.values(), now, queue_id),
                )
            return self._queue(queue_id)

    def delete(self, queue_id: str) -> bool:
        """Remove the queue and its items; False for an unknown queue."""
        with self._lock, _transaction(self._db):
            gone = self._db.execute("DELETE FROM queues WHERE id = ?", (queue_id,)).rowcount
            self._db.execute("DELETE FROM queue_items WHERE queue_id = ?", (queue_id,))
        return gone > 0

    def clear(self, queue_id: str) -> bool:
        """Remove every item of the queue; False for an unknown queue."""
        with self._lock, _transaction(self._db):
            if self._queue(queue_id) is None:
                return False
            self._db.execute("DELETE FROM queue_items WHERE queue_id = ?", (queue_id,))
        return True

    def list_queues(
        self, page: PageRequest, search: str | None, updated_by: Sequence[str]
    ) -> tuple[list[QueueRow], bool]:
        """A page of queues, newest first, and whether more lie in that direction. `search`:
        a case-insensitive substring of the display name. `updated_by`: queues last updated
        by these accounts, which is none: an API key is no account, so nothing made here has
        one (the SDK: updated_by_id is unset when updated via API key authentication)."""
        where: list[str] = ["1"]
        params: list[str] = []
        if search is not None:
            where.append("instr(casefold(q.display_name), casefold(?)) > 0")
            params.append(search)
        if updated_by:
            where.append("0")
        filters = (" AND ".join(where), params)
        with self._lock:
            rows, more = self._page("queues q", _QUEUE_COLUMNS, ("1", ()), filters, page, True)
        return [_queue_row(row) for row in rows], more

    def list_items(self, queue_id: str, page: PageRequest) -> tuple[list[ItemRow], bool]:
        """A page of the queue's items in the order they were added, and whether more lie in
        that direction."""
        with self._lock:
            scope = ("i.queue_id = ?", (queue_id,))
            rows, more = self._page("queue_items i", _ITEM_COLUMNS, scope, ("1", []), page, False)
        return [_item_row(row) for row in rows], more

    def add_items(self, queue_id: str, spans: Iterable[tuple[str, str]]) -> list[ItemRow] | None:
        """Add the spans not yet in the queue, in order; return the items created (None for an
        unknown queue)."""
        created: list[str] = []
        with self._lock, _transaction(self._db):
            if self._queue(queue_id) is None:
                return None
            for trace_id, span_id in spans:
                item_id = new_ulid()
                inserted = self._db.execute(
                    "INSERT OR IGNORE INTO queue_items (id, queue_id, trace_id, span_id) "
                    "VALUES (?, ?, ?, ?)",
                    (item_id, queue_id, trace_id, span_id),
                ).rowcount
                if inserted:
                    created.append(item_id)
            rows = [self._item(queue_id, item_id) for item_id in created]
        return [row for row in rows if row is not None]

    def remove_items(self, queue_id: str, span_ids: Iterable[str]) -> bool:
        """Remove the queue's items on these span ids (absent ones are no-ops); False for an
        unknown queue."""
        with self._lock, _transaction(self._db):
            if self._queue(queue_id) is None:
                return False
            self._db.executemany(
                "DELETE FROM queue_items WHERE queue_id = ? AND span_id = ?",
                [(queue_id, span_id) for span_id in span_ids],
            )
        return True

    def get_item(self, queue_id: str, item_id: str) -> ItemRow | None:
        """The queue's item, or None."""
        with self._lock:
            return self._item(queue_id, item_id)

    def all_queues(self) -> list[QueueRow]:
        """Every queue, oldest first."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_QUEUE_COLUMNS} FROM queues q ORDER BY q.seq")
            return [_queue_row(row) for row in rows.fetchall()]

    def all_items(self, queue_id: str) -> list[ItemRow]:
        """Every item of the queue in the order added ([] for an unknown queue)."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_ITEM_COLUMNS} FROM queue_items i WHERE i.queue_id = ? ORDER BY i.seq",
                (queue_id,),
            )
            return [_item_row(row) for row in rows.fetchall()]

    # Callers hold the lock.

    def _queue(self, queue_id: str) -> QueueRow | None:
        row = self._db.execute(
            f"SELECT {_QUEUE_COLUMNS} FROM queues q WHERE q.id = ?", (queue_id,)
        ).fetchone()
        return None if row is None else _queue_row(row)

    def _item(self, queue_id: str, item_id: str) -> ItemRow | None:
        row = self._db.execute(
            f"SELECT {_ITEM_COLUMNS} FROM queue_items i WHERE i.queue_id = ? AND i.id = ?",
            (queue_id, item_id),
        ).fetchone()
        return None if row is None else _item_row(row)

    def _page(
        self,
        table: str,
        columns: str,
        scope: tuple[str, tuple[str, ...]],
        filters: tuple[str, list[str]],
        page: PageRequest,
        newest_first: bool,
    ) -> tuple[list[tuple[Any, ...]], bool]:
        """Rows of one page in list order, and whether more lie beyond them. `scope` (a
        condition and its parameters) is the list, `filters` narrow what the page shows; a
        cursor must name an object of the list, else UnknownCursor."""
        alias = table.split()[1]
        conditions = [scope[0], filters[0]]
        values: list[object] = [*scope[1], *filters[1]]
        # Forward is the list's order; paging back reads the other way, then turns around.
        forward = page.ending_before is None
        cursor = page.starting_after if forward else page.ending_before
        descending = newest_first == forward
        if cursor is not None:
            found = self._db.execute(
                f"SELECT {alias}.seq FROM {table} WHERE {scope[0]} AND {alias}.id = ?",
                (*scope[1], cursor),
            ).fetchone()
            if found is None:
                raise UnknownCursor("starting_after" if forward else "ending_before", cursor)
            conditions.append(f"{alias}.seq {'<' if descending else '>'} ?")
            values.append(found[0])
        order = "DESC" if descending else "ASC"
        rows = self._db.execute(
            f"SELECT {columns} FROM {table} WHERE {' AND '.join(conditions)} "
            f"ORDER BY {alias}.seq {order} LIMIT ?",
            (*values, page.limit + 1),
        ).fetchall()
        more = len(rows) > page.limit
        rows = rows[: page.limit]
        return (rows if forward else rows[::-1]), more


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN ... COMMIT, or ROLLBACK when the block raises (the caller holds the lock)."""
    db.execute("BEGIN")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _casefold(text: str | None) -> str | None:
    return None if text is None else text.casefold()


def _queue_row(row: tuple[Any, ...]) -> QueueRow:
    ids = json.loads(row[4])
    return QueueRow(row[0], row[1], row[2], row[3], tuple(ids), row[5], row[6], row[7])


def _item_row(row: tuple[Any, ...]) -> ItemRow:
    return ItemRow(row[0], row[1], row[2], row[3], tuple(sorted(json.loads(row[4]))))
