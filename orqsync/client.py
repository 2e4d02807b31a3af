"""OrqClient: the only module that talks HTTP.

Every httpx exception and every non-2xx status becomes an ApiError carrying the method, path,
status and the server's message; nothing outside this module sees an httpx type. 401/403 and
4xx validation errors are final; 429, 5xx, timeouts and dropped connections are retried with
exponential backoff and full jitter, honouring Retry-After. The API key lives only in the
Authorization header and is scrubbed from anything this module puts in an error.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import threading
import time
from collections.abc import Callable, Mapping

import httpx

from orqsync import __version__
from orqsync.errors import ApiError, OrqsyncError
from orqsync.plan import ANNOTATE, FEEDBACK_PUT, FEEDBACK_REMOVE, REMOVE, Request
from orqsync.project import Settings
from orqsync.state import Metadata, feedback_pairs
from orqsync.validate import Value
from orqsync.wire import method_and_path, request_body

EMBEDDED_KEY = "embedded-emulator"  # not a secret: the in-process emulator accepts only this
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class Pacer:
    """Spaces requests: never above a fixed rate, slower after each 429, and everyone waits
    out a 429's Retry-After (a rate limit names the whole client, not one request).

    With no fixed rate the spacing adapts: a 429 doubles it, each success shrinks it by 2%.
    """

    MAX_INTERVAL = 60.0

    def __init__(
        self,
        requests_per_minute: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.floor = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self.interval = self.floor
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = 0.0
        self._paused_until = 0.0

    def wait(self) -> None:
        with self._lock:
            now = self._clock()
            start = max(now, self._next, self._paused_until)
            self._next = start + self.interval
        if start > now:
            self._sleep(start - now)

    def throttled(self, seconds: float) -> None:
        """A 429: hold every request for `seconds` and lower the rate."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
            self.interval = min(max(self.interval * 2, self.floor, 0.05), self.MAX_INTERVAL)

    def succeeded(self) -> None:
        if self.interval > self.floor:
            with self._lock:
                shrunk = self.interval * 0.98
                self.interval = self.floor if shrunk < max(self.floor, 0.001) else shrunk


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from `Retry-After` (seconds or HTTP date) or `retry-after-ms`."""
    if "retry-after-ms" in headers:
        try:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def server_message(response: httpx.Response) -> str:
    """The server's words, read tolerantly: message, error.message, error, then raw text."""
    text = response.text
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()[:500] or response.reason_phrase
    if isinstance(body, dict):
        if isinstance(body.get("message"), str):
            return body["message"]
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        if isinstance(error, str):
            return error
    return text.strip()[:500]


class OrqClient:
    """Typed calls to the orq.ai annotation and feedback endpoints, with retries."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        metadata_style: str = "documented",
        timeout: float = 30.0,
        max_attempts: int = 6,
        parallelism: int = 8,
        transport: httpx.BaseTransport | None = None,
        pacer: Pacer | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        on_retry: Callable[[ApiError, float], None] | None = None,
    ) -> None:
        self._key = api_key
        self.metadata_style = metadata_style
        self.max_attempts = max_attempts
        self.pacer = pacer or Pacer(sleep=sleep)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._on_retry = on_retry
        self.attempts = 0  # every request sent, retries included
        self._http = httpx.Client(
            base_url=base_url,
            headers={
                "Authorization": f"Bearer {api_key}",
                "User-Agent": f"orqsync/{__version__}",
                "Content-Type": "application/json",
            },
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(
                max_connections=parallelism * 2, max_keepalive_connections=parallelism * 2
            ),
        )

    def __enter__(self) -> OrqClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # Typed calls -------------------------------------------------------------------------

    def annotate(
        self, trace_id: str, span_id: str, items: list[tuple[str, Value]], metadata: Metadata = ()
    ) -> None:
        self.send(Request(ANNOTATE, trace_id, span_id, items=tuple(items), metadata=metadata))

    def remove(self, trace_id: str, span_id: str, keys: list[str]) -> None:
        self.send(Request(REMOVE, trace_id, span_id, keys=tuple(keys)))

    def feedback_put(self, record: Mapping[str, object]) -> None:
        self.send(Request(FEEDBACK_PUT, str(record["trace_id"]), feedback=feedback_pairs(record)))

    def feedback_remove(self, record_id: str, trace_id: str, product: str) -> None:
        body = {"id": record_id, "trace_id": trace_id, "product": product}
        self.send(Request(FEEDBACK_REMOVE, trace_id, feedback=feedback_pairs(body)))

    # The one way out ---------------------------------------------------------------------

    def send(self, request: Request) -> None:
        """Send one request, retrying what can be retried; raise ApiError when it fails."""
        method, path = method_and_path(request)
        content = json.dumps(request_body(request, self.metadata_style)).encode("utf-8")
        attempt = 1
        while True:
            self.pacer.wait()
            try:
                self._once(method, path, content)
                self.pacer.succeeded()
                return
            except ApiError as error:
                if not error.retryable or attempt >= self.max_attempts:
                    if error.retryable:
                        error.message += f" (gave up after {attempt} attempts)"
                        error.hint = error.hint or "run apply again later to finish"
                    raise
                delay = self._backoff(attempt, error.retry_after)
                if error.status == 429:
                    self.pacer.throttled(delay)
                if self._on_retry is not None:
                    self._on_retry(error, delay)
                if error.status != 429:
                    self._sleep(delay)
                attempt += 1

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        ceiling = min(self._backoff_cap, self._backoff_base * 2 ** (attempt - 1))
        jittered = self._rng.uniform(0, ceiling)
        return max(jittered, retry_after) if retry_after is not None else jittered

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def _once(self, method: str, path: str, content: bytes) -> None:
        self.attempts += 1
        try:
            response = self._http.request(method, path, content=content)
        except httpx.TimeoutException:
            raise ApiError(
                f"{method} {path}: timed out", method=method, path=path, retryable=True
            ) from None
        except httpx.ConnectError as exc:
            raise ApiError(
                self._scrub(f"{method} {path}: cannot connect to {self._http.base_url} ({exc})"),
                method=method,
                path=path,
                retryable=True,
                hint="check api.base_url in orqsync.yaml and your network",
            ) from None
        except httpx.TransportError as exc:
            raise ApiError(
                self._scrub(f"{method} {path}: connection failed ({type(exc).__name__}: {exc})"),
                method=method,
                path=path,
                retryable=True,
            ) from None
        status = response.status_code
        if 200 <= status < 300:
            return
        message = self._scrub(f"{method} {path}: HTTP {status}: {server_message(response)}")
        retryable = status in RETRYABLE_STATUS
        hint = ""
        if status in (401, 403):
            hint = "check the API key (and that it belongs to this workspace)"
        elif status == 404:
            hint = "check that the key exists in orq.ai and in definitions.yaml, and the span id"
        raise ApiError(
            message,
            method=method,
            path=path,
            status=status,
            retryable=retryable,
            retry_after=parse_retry_after(response.headers) if retryable else None,
            hint=hint,
        )


def make_client(
    settings: Settings,
    environ: Mapping[str, str] | None = None,
    *,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[ApiError, float], None] | None = None,
) -> OrqClient:
    """The client the project's settings ask for; `embedded` runs the in-process emulator."""
    env = os.environ if environ is None else environ
    base_url = settings.base_url
    if settings.embedded:
        transport = transport or _embedded_transport(settings)
        api_key = EMBEDDED_KEY
        base_url = "http://embedded.orqsync.invalid"
    else:
        api_key = env.get(settings.api_key_env, "")
        if not api_key:
            raise OrqsyncError(
                f"the API key is not set: ${settings.api_key_env} is empty",
                f"export {settings.api_key_env}=<your orq.ai API key>, or set api.base_url: "
                "embedded in orqsync.yaml to try orqsync against the built-in emulator",
            )
    return OrqClient(
        base_url,
        api_key,
        metadata_style=settings.metadata_style,
        timeout=settings.timeout_seconds,
        max_attempts=settings.max_attempts,
        parallelism=settings.parallelism,
        transport=transport,
        pacer=Pacer(settings.requests_per_minute, sleep=sleep),
        sleep=sleep,
        on_retry=on_retry,
    )


def _embedded_transport(settings: Settings) -> httpx.BaseTransport:
    """The in-process emulator of `base_url: embedded`, stored under the project's .orqsync/;
    closing the client closes its database."""
    from orqsync.emulator import Emulator, EmulatorConfig, EmulatorTransport

    data_dir = os.path.join(settings.root, ".orqsync")
    os.makedirs(data_dir, exist_ok=True)
    emulator = Emulator(
        EmulatorConfig(
            api_keys=(EMBEDDED_KEY,),
            definitions_path=settings.definitions_path,
            string_limit=settings.string_limit,
            db_path=os.path.join(data_dir, "emulator.db"),
        )
    )
    return EmulatorTransport(emulator, owns_emulator=True)
