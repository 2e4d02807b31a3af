"""httpx transports that hand requests to an in-process Emulator: no sockets at all."""

from __future__ import annotations

import asyncio

import httpx

from .core import Emulator
from .response import Response

_DISCONNECTED = "Server disconnected without sending a response."


class EmulatorTransport(httpx.BaseTransport):
    """A sync httpx transport answering from `emulator`; a dropped request raises like a socket.

    A dropped request raises `httpx.RemoteProtocolError`, as httpx does when a server closes
    the connection without answering. With `owns_emulator`, closing the transport (as closing
    its httpx client does) closes the emulator's database too.
    """

    def __init__(self, emulator: Emulator, *, owns_emulator: bool = False) -> None:
        self._emulator = emulator
        self._owns_emulator = owns_emulator

    def close(self) -> None:
        if self._owns_emulator:
            self._emulator.close()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        answer = self._emulator.handle(
            request.method, request.url.raw_path.decode("ascii"), request.headers, body
        )
        return _to_httpx(answer, request)


class AsyncEmulatorTransport(httpx.AsyncBaseTransport):
    """The asyncio twin of EmulatorTransport; the emulator runs in a worker thread."""

    def __init__(self, emulator: Emulator) -> None:
        self._emulator = emulator

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        # A thread, because the emulator blocks: SQLite writes and injected latency.
        answer = await asyncio.to_thread(
            self._emulator.handle,
            request.method,
            request.url.raw_path.decode("ascii"),
            request.headers,
            body,
        )
        return _to_httpx(answer, request)


def _to_httpx(answer: Response, request: httpx.Request) -> httpx.Response:
    if answer.drop:
        raise httpx.RemoteProtocolError(_DISCONNECTED, request=request)
    return httpx.Response(
        answer.status, headers=answer.headers, content=answer.body, request=request
    )
