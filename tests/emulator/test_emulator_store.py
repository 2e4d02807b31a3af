"""SQLite storage: durability across reopen, atomic batches, thread safety."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from orqsync.emulator.store import Store

from .emulator_helpers import client_for


def test_data_survives_closing_and_reopening_the_same_db_file(make_emulator, tmp_path: Path):
    db = str(tmp_path / "emulator.db")
    first = make_emulator(db_path=db)
    with client_for(first) as http:
        http.post(
            "/v2/traces/t/spans/s/annotation",
            json={
                "annotations": [{"key": "rating", "value": "good"}],
                "metadata": {"identity_id": "u"},
            },
        )
        http.post("/v2/feedback", json={"id": "F1", "property": "p", "value": 2, "trace_id": "t"})
    first.close()
    second = make_emulator(db_path=db)
    assert second.annotations() == [
        {
            "trace_id": "t",
            "span_id": "s",
            "key": "rating",
            "value": "good",
            "metadata": {"identity_id": "u"},
        }
    ]
    assert second.feedback() == [
        {"property": "p", "value": 2, "trace_id": "t", "id": "F1", "product": "deployments"}
    ]


def test_a_file_database_uses_wal_journaling(tmp_path: Path):
    db = tmp_path / "emulator.db"
    Store(str(db)).close()
    with sqlite3.connect(db) as check:
        assert check.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    check.close()


def test_a_failing_batch_leaves_nothing_behind():
    store = Store()
    try:
        store.put_annotations("t", "s", [("rating", "good")], {})
        with pytest.raises(sqlite3.IntegrityError):
            store.put_annotations("t", "s", [("rating", "bad"), (None, "x")], {})  # type: ignore[list-item]
        assert [row["value"] for row in store.annotations()] == ["good"]
    finally:
        store.close()


def test_values_keep_their_json_type_through_storage():
    store = Store()
    try:
        values = [("a", 1), ("b", 1.0), ("c", True), ("d", ["x", "y"]), ("e", "1")]
        store.put_annotations("t", "s", values, {"n": 1})
        assert [(row["key"], row["value"]) for row in store.annotations()] == values
        assert type(store.annotations()[1]["value"]) is float
    finally:
        store.close()


def test_concurrent_writers_through_the_transport_lose_nothing(emulator):
    def work(worker: int) -> None:
        with client_for(emulator) as http:
            for number in range(40):
                response = http.post(
                    f"/v2/traces/t{worker}/spans/s{number}/annotation",
                    json={"annotations": [{"key": "rating", "value": "good"}]},
                )
                assert response.status_code == 200

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(emulator.annotations()) == 320
    assert emulator.stats()["by_status"] == {"200": 320}
