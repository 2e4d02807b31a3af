"""The emulator on a loopback socket: HTTP/1.1 keep-alive, one thread per connection.

A thread per connection suits the load it carries: a handful of keep-alive connections with many
requests each. The HTTP/1.1 reader is hand-written because it is much faster than h11 here
(measured with 8 raw keep-alive clients: about 5,500 against 3,500 requests/s); it covers what
clients send to this API: Content-Length and chunked bodies, 100-continue, pipelining,
keep-alive and close, HTTP/1.0.
"""

from __future__ import annotations

import contextlib
import errno
import signal
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from types import FrameType
from typing import Any, BinaryIO, cast

from .config import EmulatorConfig
from .core import Emulator

_READ_SIZE = 65536
_MAX_LINE = 65536
_MAX_HEADERS = 100
_MAX_BODY = 16 * 1024 * 1024
_REASONS = {status.value: status.phrase for status in HTTPStatus}


class ListenError(OSError):
    """The server cannot listen on host:port. `reason` says why in a word: "in_use",
    "unknown_host" (not an IP address or a name that resolves), "not_local" (not an address of
    this machine), "denied" or "other"."""

    def __init__(self, host: str, port: int, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror)
        self.host = host
        self.port = port
        # create_server re-raises a failed name lookup as a plain OSError with the lookup's
        # (negative) EAI_* code.
        if isinstance(cause, socket.gaierror) or (cause.errno or 0) < 0:
            self.reason = "unknown_host"
            self.problem = f"{host} is not an IP address or a known host name"
        elif cause.errno == errno.EADDRINUSE:
            self.reason, self.problem = "in_use", "the address is already in use"
        elif cause.errno == errno.EADDRNOTAVAIL:
            self.reason = "not_local"
            self.problem = f"{host} is not an address of this machine"
        elif cause.errno in (errno.EACCES, errno.EPERM):
            self.reason, self.problem = "denied", "permission denied"
        else:
            self.reason, self.problem = "other", cause.strerror or str(cause)

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"cannot listen on {self.address}: {self.problem}"


class EmulatorServer:
    """Serves an Emulator on host:port (port 0 picks a free one) from background threads.

    `start` raises ListenError when it cannot listen there. An IPv6 address (one with a colon)
    listens on IPv6; anything else, names included, on IPv4.
    """

    def __init__(self, emulator: Emulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self._emulator = emulator
        self._address = (host, port)
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopping = False
        self._connections: dict[socket.socket, threading.Thread] = {}

    @property
    def url(self) -> str:
        """The base URL, e.g. http://127.0.0.1:54321; only while started."""
        if self._listener is None:
            raise RuntimeError("the emulator server is not started")
        host, port = self._listener.getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> EmulatorServer:
        """Bind, then answer from background threads; returns self."""
        if self._listener is not None:
            raise RuntimeError("the emulator server is already started")
        host, port = self._address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            listener = socket.create_server(self._address, family=family, backlog=128)
        except OSError as exc:
            raise ListenError(host, port, exc) from exc
        self._stopping = False
        self._listener = listener
        self._acceptor = threading.Thread(
            target=self._accept, args=(listener,), name="orqsync-emulator-accept", daemon=True
        )
        self._acceptor.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close every open connection and wait for their threads."""
        listener, acceptor = self._listener, self._acceptor
        if listener is None or acceptor is None:
            return
        with self._lock:
            self._stopping = True
        # Closing a socket does not wake accept() on every platform; a connection does.
        host, port = listener.getsockname()[:2]
        wake = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        with contextlib.suppress(OSError):
            socket.create_connection((wake, port), timeout=1.0).close()
        acceptor.join()
        listener.close()
        with self._lock:
            connections = dict(self._connections)
        for sock in connections:
            # Idle keep-alive connections block in recv(); a shutdown wakes them.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in connections.values():
            thread.join()
        self._listener = self._acceptor = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                if self._stopping:
                    return
                time.sleep(0.01)  # e.g. out of file descriptors: wait instead of spinning
                continue
            with self._lock:
                if self._stopping:
                    sock.close()
                    return
                thread = threading.Thread(
                    target=self._serve, args=(sock,), name="orqsync-emulator-conn", daemon=True
                )
                self._connections[sock] = thread
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # A BufferedReader at run time; typeshed says IOBase for any buffering size.
            reader = cast(BinaryIO, sock.makefile("rb", buffering=_READ_SIZE))
            try:
                _serve_connection(self._emulator, sock, reader)
            except OSError:
                pass  # the peer hung up, or stop() shut the socket down
            finally:
                reader.close()
        finally:
            with self._lock:
                self._connections.pop(sock, None)
            # Also how a drop ends: the socket closes without a byte of answer.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def serve(
    config: EmulatorConfig,
    host: str = "127.0.0.1",
    port: int = 0,
    ready: Callable[[str], object] | None = None,
) -> None:
    """Run the emulator in the foreground until Ctrl-C or SIGTERM.

    Prints `orqsync emulator listening on URL` once the socket accepts connections, then calls
    `ready(url)` if given.
    """
    stopping = threading.Event()
    emulator = Emulator(config)
    previous = _stop_on_signals(stopping)
    try:
        with EmulatorServer(emulator, host, port) as server:
            print(f"orqsync emulator listening on {server.url}", flush=True)
            if ready is not None:
                ready(server.url)
            while not stopping.wait(0.2):
                pass
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        emulator.close()


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _stop_on_signals(stopping: threading.Event) -> dict[int, Any]:
    """Ctrl-C and SIGTERM set `stopping`; the previous handlers, to put back. A flag, not
    KeyboardInterrupt: an exception raised wherever the main thread happens to be (printing
    the ready line, stopping the server) could leave the server half stopped."""
    if threading.current_thread() is not threading.main_thread():
        return {}  # signals can only be handled in the main thread

    def handler(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    return {number: signal.signal(number, handler) for number in _STOP_SIGNALS}


class _BadRequest(Exception):
    """The bytes on the wire are not an HTTP/1.1 request we can answer."""


def _serve_connection(emulator: Emulator, sock: socket.socket, reader: BinaryIO) -> None:
    while True:
        try:
            request = _read_request(sock, reader)
        except _BadRequest as error:
            sock.sendall(_render(400, {"content-type": "text/plain"}, str(error).encode(), False))
            return
        if request is None:
            return
        method, target, headers, body, keep_alive = request
        answer = emulator.handle(method, target, headers, body)
        if answer.drop:
            return  # the caller closes the socket: the client gets no answer at all
        sock.sendall(_render(answer.status, answer.headers, answer.body, keep_alive))
        if not keep_alive:
            return


def _read_request(
    sock: socket.socket, reader: BinaryIO
) -> tuple[str, str, dict[str, str], bytes, bool] | None:
    line = reader.readline(_MAX_LINE + 1)
    while line in (b"\r\n", b"\n"):  # RFC 9112: ignore empty lines before a request
        line = reader.readline(_MAX_LINE + 1)
    if not line:
        return None  # closed between requests
    if len(line) > _MAX_LINE or not line.endswith(b"\n"):
        raise _BadRequest("request line too long or incomplete")
    parts = line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequest("malformed request line")
    method, target, version = parts
    headers: dict[str, str] = {}
    for _ in range(_MAX_HEADERS + 1):
        raw = reader.readline(_MAX_LINE + 1)
        if raw in (b"\r\n", b"\n"):
            break
        if not raw.endswith(b"\n"):
            raise _BadRequest("header line too long or incomplete")
        name, colon, value = raw.decode("latin-1").partition(":")
        if not colon or not name or name != name.strip():
            raise _BadRequest("malformed header line")
        name = name.lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    else:
        raise _BadRequest("too many headers")
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
    if headers.get("expect", "").lower() == "100-continue":
        sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    return method, target, headers, _read_body(reader, headers), keep_alive


def _read_body(reader: BinaryIO, headers: dict[str, str]) -> bytes:
    encoding = headers.get("transfer-encoding")
    if encoding is not None:
        if encoding.lower() != "chunked" or "content-length" in headers:
            raise _BadRequest("unsupported transfer-encoding")
        return _read_chunks(reader)
    length_text = headers.get("content-length", "0")
    if not length_text.isdigit() or int(length_text) > _MAX_BODY:
        raise _BadRequest("bad content-length")
    length = int(length_text)
    body = reader.read(length) if length else b""
    if len(body) != length:
        raise _BadRequest("body shorter than content-length")
    return body


def _read_chunks(reader: BinaryIO) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        size_line = reader.readline(_MAX_LINE + 1)
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise _BadRequest("bad chunk size") from None
        total += size
        if size < 0 or total > _MAX_BODY:
            raise _BadRequest("bad chunk size")
        if size == 0:
            break
        chunk = reader.read(size)
        if len(chunk) != size or reader.readline(3) not in (b"\r\n", b"\n"):
            raise _BadRequest("truncated chunk")
        chunks.append(chunk)
    while reader.readline(_MAX_LINE + 1) not in (b"\r\n", b"\n", b""):
        pass  # trailer fields: ignored
    return b"".join(chunks)


def _render(status: int, headers: dict[str, str], body: bytes, keep_alive: bool) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\n"]
    lines.extend(f"{name}: {value}\r\n" for name, value in headers.items())
    if status != 204:  # RFC 9110 8.6: a 204 carries no Content-Length
        lines.append(f"content-length: {len(body)}\r\n")
    if not keep_alive:
        lines.append("connection: close\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1") + body
