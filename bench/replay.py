"""The reference of scenario 4: the plan's requests replayed with plain httpx.

Run as a subprocess: `python bench/replay.py PLAN_JSON BASE_URL PARALLELISM`, with the API key
in the environment variable ORQSYNC_BENCH_KEY. Reads the requests of a `plan --format json`
document (method, path, body), encodes every body up front, then sends them from PARALLELISM
threads sharing one `httpx.Client` (a pool of PARALLELISM keep-alive connections), each span's
requests in order, with the headers orqsync sends. Only the sending is timed (no interpreter
start-up, no JSON reading or body encoding). No retries: any answer that is not 2xx is counted
and reported (status 0 stands for a transport error), and the exit status is 1.

Prints one JSON line: {"seconds": ..., "sent": ..., "statuses": {"200": ...}}.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter

import httpx


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: replay.py PLAN_JSON BASE_URL PARALLELISM", file=sys.stderr)
        return 2
    plan_path, base_url, parallelism_text = argv
    parallelism = int(parallelism_text)
    key = os.environ.get("ORQSYNC_BENCH_KEY", "")
    if not key:
        print("ORQSYNC_BENCH_KEY is not set", file=sys.stderr)
        return 1
    with open(plan_path, encoding="utf-8") as handle:
        document = json.load(handle)
    # One chain per span, in plan order; a chain's requests go out one after the other.
    chains: dict[tuple[str, str], list[tuple[str, str, bytes]]] = {}
    for request in document["requests"]:
        chain = chains.setdefault((request["trace_id"], request.get("span_id", "")), [])
        body = json.dumps(request["body"]).encode("utf-8")
        chain.append((request["method"], request["path"], body))
    work = list(chains.values())
    del document
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    lock = threading.Lock()
    position = 0

    client = httpx.Client(
        base_url=base_url,
        headers={
            "Authorization": f"Bearer {key}",
            "User-Agent": "orqsync-bench-replay",
            "Content-Type": "application/json",
        },
        timeout=30.0,
        limits=httpx.Limits(max_connections=parallelism, max_keepalive_connections=parallelism),
    )

    def worker() -> None:
        nonlocal position
        local: Counter[int] = Counter()
        while True:
            with lock:
                if position >= len(work):
                    break
                chain = work[position]
                position += 1
            for method, path, body in chain:
                try:
                    response = client.request(method, path, content=body)
                except httpx.HTTPError as exc:
                    local[0] += 1
                    failures.append(f"{method} {path}: {type(exc).__name__}: {exc}")
                    continue
                local[response.status_code] += 1
                if not 200 <= response.status_code < 300:
                    failures.append(f"{method} {path}: {response.status_code} {response.text}")
        with lock:
            statuses.update(local)

    with client:
        threads = [threading.Thread(target=worker) for _ in range(parallelism)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - start
    sent = sum(statuses.values())
    print(
        json.dumps(
            {
                "seconds": seconds,
                "sent": sent,
                "statuses": {str(k): v for k, v in sorted(statuses.items())},
            }
        )
    )
    if failures:
        print(f"{len(failures)} requests failed; the first ones:", file=sys.stderr)
        print("\n".join(failures[:5]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
