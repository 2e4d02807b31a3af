"""The emulator served on 127.0.0.1 over real TCP: HTTP/1.1 details, drops, lifecycle, serve()."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from orqsync.emulator import Emulator, EmulatorServer, FaultConfig

from .emulator_helpers import ANNOTATION_PATH, API_KEY, SPAN, TRACE

BODY = json.dumps({"annotations": [{"key": "rating", "value": "good"}]}).encode()


class Connection:
    """A raw client socket with a buffered reader, for byte-level HTTP checks."""

    def __init__(self, server: EmulatorServer) -> None:
        parts = urlsplit(server.url)
        assert parts.hostname is not None and parts.port is not None
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
        self.reader = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self) -> tuple[bytes, dict[str, str], bytes]:
        """Read one HTTP response framed by Content-Length."""
        status = self.reader.readline().rstrip(b"\r\n")
        assert status, "connection closed before a response"
        headers = {}
        while (line := self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers, self.reader.read(int(headers["content-length"]))

    def closed_by_server(self) -> bool:
        """True when the server closed the connection with nothing more to read."""
        return self.reader.read(1) == b""

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.reader.close()
        self.sock.close()


def raw_request(body: bytes = BODY, extra: str = "", version: str = "HTTP/1.1") -> bytes:
    head = (
        f"POST {ANNOTATION_PATH} {version}\r\nHost: emulator\r\n"
        f"Authorization: Bearer {API_KEY}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


def test_annotations_posted_over_tcp_are_stored(server: EmulatorServer, emulator: Emulator):
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        response = http.post(
            ANNOTATION_PATH, json={"annotations": [{"key": "rating", "value": "good"}]}
        )
        rejected = http.post(ANNOTATION_PATH, json={"annotations": [{"key": "tone", "value": "x"}]})
        removed = http.request("DELETE", ANNOTATION_PATH, json={"keys": ["approved"]})
        inspected = http.get("/_emulator/annotations").json()
    assert (response.status_code, response.json()) == (200, {})
    assert rejected.status_code == 404
    assert removed.status_code == 200
    assert [(row["key"], row["value"]) for row in inspected["annotations"]] == [("rating", "good")]
    assert emulator.span(TRACE, SPAN)["annotations"] == {"rating": "good"}


def test_url_names_the_bound_loopback_port(server: EmulatorServer):
    parts = urlsplit(server.url)
    assert parts.scheme == "http"
    assert parts.hostname == "127.0.0.1"
    assert parts.port is not None and parts.port > 0


def test_one_connection_carries_many_requests(server: EmulatorServer, emulator: Emulator):
    with Connection(server) as conn:
        for _ in range(3):
            conn.send(raw_request())
            status, headers, body = conn.response()
            assert status == b"HTTP/1.1 200 OK"
            assert body == b"{}"
            assert "connection" not in headers
    assert len(emulator.requests()) == 3


def test_pipelined_requests_are_answered_in_order(server: EmulatorServer):
    bad = json.dumps({"annotations": [{"key": "rating", "value": "meh"}]}).encode()
    with Connection(server) as conn:
        conn.send(raw_request() + raw_request(bad) + raw_request())
        statuses = [conn.response()[0] for _ in range(3)]
    assert statuses == [b"HTTP/1.1 200 OK", b"HTTP/1.1 400 Bad Request", b"HTTP/1.1 200 OK"]


def test_a_chunked_request_body_is_accepted(server: EmulatorServer, emulator: Emulator):
    half = len(BODY) // 2
    chunks = f"{half:x}\r\n".encode() + BODY[:half] + b"\r\n"
    chunks += f"{len(BODY) - half:x}\r\n".encode() + BODY[half:] + b"\r\n0\r\n\r\n"
    head = (
        f"POST {ANNOTATION_PATH} HTTP/1.1\r\nHost: e\r\nAuthorization: Bearer {API_KEY}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    with Connection(server) as conn:
        conn.send(head.encode() + chunks)
        assert conn.response()[0] == b"HTTP/1.1 200 OK"
    assert emulator.span(TRACE, SPAN)["annotations"] == {"rating": "good"}


def test_expect_100_continue_is_answered_before_the_body(server: EmulatorServer):
    head = raw_request(extra="Expect: 100-continue\r\n")[: -len(BODY)]
    with Connection(server) as conn:
        conn.send(head)
        assert conn.reader.readline() == b"HTTP/1.1 100 Continue\r\n"
        assert conn.reader.readline() == b"\r\n"
        conn.send(BODY)
        assert conn.response()[0] == b"HTTP/1.1 200 OK"


def test_http_10_and_connection_close_end_the_connection(server: EmulatorServer):
    for request in (raw_request(version="HTTP/1.0"), raw_request(extra="Connection: close\r\n")):
        with Connection(server) as conn:
            conn.send(request)
            status, headers, _ = conn.response()
            assert status == b"HTTP/1.1 200 OK"
            assert headers["connection"] == "close"
            assert conn.closed_by_server()


def test_a_malformed_request_is_answered_400_and_closed(server: EmulatorServer):
    with Connection(server) as conn:
        conn.send(b"NONSENSE\r\n\r\n")
        status, _, body = conn.response()
        assert status == b"HTTP/1.1 400 Bad Request"
        assert body == b"malformed request line"
        assert conn.closed_by_server()


def test_a_drop_closes_the_socket_without_an_answer(make_emulator):
    emulator = make_emulator(faults=FaultConfig(drop_rate=1.0))
    with EmulatorServer(emulator) as server, Connection(server) as conn:
        conn.send(raw_request())
        assert conn.closed_by_server()
    assert [entry.status for entry in emulator.requests()] == [0]


def test_a_drop_raises_in_an_httpx_client_over_tcp(make_emulator):
    emulator = make_emulator(faults=FaultConfig(drop_rate=1.0))
    with (
        EmulatorServer(emulator) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"}) as http,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        http.post(ANNOTATION_PATH, json={"annotations": [{"key": "rating", "value": "good"}]})


def test_429s_over_tcp_carry_the_rate_limit_headers(make_emulator):
    emulator = make_emulator(faults=FaultConfig(rate_limit_per_minute=1))
    with EmulatorServer(emulator) as server, Connection(server) as conn:
        conn.send(raw_request() + raw_request())
        assert conn.response()[0] == b"HTTP/1.1 200 OK"
        status, headers, _ = conn.response()
    assert status == b"HTTP/1.1 429 Too Many Requests"
    assert headers["retry-after"] == "60"
    assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= set(headers)


def test_stop_closes_idle_keep_alive_connections(emulator: Emulator):
    server = EmulatorServer(emulator).start()
    with Connection(server) as conn:
        conn.send(raw_request())
        conn.response()
        server.stop()
        assert conn.closed_by_server()
    with pytest.raises(RuntimeError):
        _ = server.url


def test_a_server_can_be_restarted_after_stop(emulator: Emulator):
    server = EmulatorServer(emulator)
    for _ in range(2):
        with server, httpx.Client(base_url=server.url) as http:
            assert http.get("/_emulator/stats").status_code == 200


def test_parallel_keep_alive_clients_are_all_served(server: EmulatorServer, emulator: Emulator):
    def work(worker: int) -> None:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"}
        ) as http:
            for number in range(25):
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
    assert len(emulator.annotations()) == 200
    assert [entry.seq for entry in emulator.requests()] == list(range(1, 201))


def test_data_survives_a_restart_with_the_same_db_file(make_emulator, tmp_path: Path):
    db = str(tmp_path / "emulator.db")
    first = make_emulator(db_path=db)
    with EmulatorServer(first) as server, httpx.Client(base_url=server.url) as http:
        http.headers["Authorization"] = f"Bearer {API_KEY}"
        http.post(ANNOTATION_PATH, json={"annotations": [{"key": "rating", "value": "good"}]})
        http.post("/v2/feedback", json={"id": "F1", "property": "p", "value": "v", "trace_id": "t"})
    first.close()
    second = make_emulator(db_path=db)
    with EmulatorServer(second) as server, httpx.Client(base_url=server.url) as http:
        assert http.get(f"/_emulator/spans/{TRACE}/{SPAN}").json()["annotations"] == {
            "rating": "good"
        }
        assert [record["id"] for record in http.get("/_emulator/feedback").json()["feedback"]] == [
            "F1"
        ]


SERVE = """
import sys
from orqsync.emulator import EmulatorConfig, serve
config = EmulatorConfig(api_keys=("k",), definitions_path=sys.argv[1], db_path=sys.argv[2])
serve(config, "127.0.0.1", 0, ready=lambda url: print("ready", url, flush=True))
print("stopped", flush=True)
"""


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_serve_prints_its_url_answers_and_stops_on_a_signal(
    definitions_file: Path, tmp_path: Path, stop_signal: signal.Signals
):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), *sys.path])}
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(definitions_file), str(tmp_path / "db.sqlite")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("orqsync emulator listening on http://127.0.0.1:")
        url = line.split()[-1]
        assert process.stdout.readline() == f"ready {url}\n"
        with httpx.Client(base_url=url, headers={"Authorization": "Bearer k"}) as http:
            response = http.post(
                "/v2/traces/t/spans/s/annotation",
                json={"annotations": [{"key": "approved", "value": True}]},
            )
        assert response.status_code == 200
        process.send_signal(stop_signal)
        assert process.wait(timeout=30) == 0
        assert process.stdout.read() == "stopped\n"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        process.stderr.close()


SIGNALLED_WHILE_STARTING = """
import os, signal, sys
from orqsync.emulator import EmulatorConfig, serve
config = EmulatorConfig(api_keys=("k",), definitions_path=sys.argv[1], db_path=sys.argv[2])
serve(config, "127.0.0.1", 0, ready=lambda url: os.kill(os.getpid(), signal.SIGINT))
print("stopped", flush=True)
"""


def test_ctrl_c_while_the_server_starts_stops_it_cleanly(definitions_file: Path, tmp_path: Path):
    """Ctrl-C sets a flag: arriving before the serving loop (here, from the ready callback),
    it raises nothing halfway through start-up; the server stops and serve() returns."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), *sys.path])}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            SIGNALLED_WHILE_STARTING,
            str(definitions_file),
            str(tmp_path / "db.sqlite"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines()[-1] == "stopped"
