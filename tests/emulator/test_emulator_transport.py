"""The httpx transports: requests reach the emulator unchanged, drops look like a hang-up."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from orqsync.emulator import AsyncEmulatorTransport, Emulator, FaultConfig

from .emulator_helpers import ANNOTATION_PATH, API_KEY, SPAN, TRACE


def test_the_async_transport_serves_the_same_api(emulator: Emulator):
    async def run() -> tuple[int, int]:
        async with httpx.AsyncClient(
            transport=AsyncEmulatorTransport(emulator),
            base_url="http://emulator",
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as http:
            created = await http.post(
                ANNOTATION_PATH, json={"annotations": [{"key": "rating", "value": "good"}]}
            )
            removed = await http.request("DELETE", ANNOTATION_PATH, json={"keys": ["tone"]})
            return created.status_code, removed.status_code

    assert asyncio.run(run()) == (200, 404)
    assert emulator.span(TRACE, SPAN)["annotations"] == {"rating": "good"}


def test_a_drop_raises_in_the_async_transport(make_emulator):
    emulator = make_emulator(faults=FaultConfig(drop_rate=1.0))

    async def run() -> None:
        async with httpx.AsyncClient(
            transport=AsyncEmulatorTransport(emulator), base_url="http://emulator"
        ) as http:
            await http.post(ANNOTATION_PATH, json={})

    with pytest.raises(httpx.RemoteProtocolError):
        asyncio.run(run())


def test_query_strings_reach_the_inspection_routes(client: httpx.Client):
    client.post(
        "/v2/traces/a/spans/1/annotation",
        json={"annotations": [{"key": "rating", "value": "good"}]},
    )
    client.post(
        "/v2/traces/b/spans/1/annotation", json={"annotations": [{"key": "rating", "value": "bad"}]}
    )
    rows = client.get("/_emulator/annotations?trace_id=b").json()["annotations"]
    assert [row["value"] for row in rows] == ["bad"]


def test_handle_can_be_called_directly_with_any_header_case(emulator: Emulator):
    response = emulator.handle(
        "post",
        ANNOTATION_PATH,
        {"AUTHORIZATION": f"Bearer {API_KEY}"},
        b'{"annotations": [{"key": "approved", "value": true}]}',
    )
    assert (response.status, response.json(), response.drop) == (200, {}, False)
    assert response.headers["Content-Type"] == "application/json"
