"""OrqClient: the only module that talks HTTP.

Every httpx exception and every non-2xx status becomes an ApiError carrying the method, path,
status and the server's message; nothing outside this module sees an httpx type. The API key
lives only in the Authorization header and is scrubbed from anything this module puts in an
error.

What an answer leads to:
- 2xx: done. 400/404/422 and other refusals: an ApiError for this request only.
- 401/403: an ApiHaltError; every later `send` raises it at once, no request is sent again.
- 429: retried after the pause the Pacer sets for everyone (Retry-After, else a backoff).
- 5xx, 408, timeouts, dropped connections: retried after a short random delay of this
  request's own (up to `max_attempts`), or, while most recent answers fail, after a pause
  shared by everyone that does not use up attempts; failing for `outage_timeout` seconds
  halts with exit 3. The server is protected by the shared pause, so a request's own delay
  stays short: a retry of bad luck should not cost seconds.
- no connection at all (refused, DNS, TLS): retried after shared pauses; unreachable for
  `unreachable_timeout` seconds halts with exit 1.
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
from orqsync.errors import ApiError, ApiHaltError, DeadlineReached, OrqsyncError
from orqsync.model import Metadata, Operation, Value
from orqsync.planning.plan import ANNOTATE, FEEDBACK_PUT, FEEDBACK_REMOVE, REMOVE, Request
from orqsync.planning.wire import method_and_path, request_body
from orqsync.remote.pacer import Outcome, Pacer, Ticket, rate_headers
from orqsync.source.project import PROJECT_FILE, Settings
from orqsync.state.model import feedback_pairs
from orqsync.text import duration_text

QUEUE_CREATE = Operation.QUEUE_CREATE
EMBEDDED_KEY = "embedded-emulator"  # not a secret: the in-process emulator accepts only this
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


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
        message = body.get("message")
        if isinstance(message, str):
            return message
        error = body.get("error")
        if isinstance(error, dict) and isinstance(nested := error.get("message"), str):
            return nested
        if isinstance(error, str):
            return error
    return text.strip()[:500]


# How long past apply's deadline (--max-duration, Ctrl-C) a request in flight may still be
# retried: one an attempt of which may have reached orq.ai goes on to an answer, not for ever.
LATE = 30.0


class OrqClient:
    """Typed calls to the orq.ai annotation and feedback endpoints, with retries."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        key_source: str = "the API key",
        metadata_style: str = "documented",
        timeout: float = 30.0,
        max_attempts: int = 10,
        unreachable_timeout: float = 60.0,
        outage_timeout: float = 300.0,
        parallelism: int = 8,
        transport: httpx.BaseTransport | None = None,
        requests_per_minute: float | None = None,
        pacer: Pacer | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
        backoff_base: float = 0.05,
        backoff_cap: float = 1.0,
        on_retry: Callable[[ApiError, float], None] | None = None,
    ) -> None:
        self._key = api_key
        self.key_source = key_source  # where the key came from, for messages: "$ORQ_API_KEY"
        self.metadata_style = metadata_style
        self.max_attempts = max_attempts
        self.unreachable_timeout = unreachable_timeout
        self.outage_timeout = outage_timeout
        # Sleeps end early once the client halts, so no thread waits out a pause for nothing.
        self._halted = threading.Event()
        # Set by stop() (and a halt): ends the waits for a turn of requests not yet sent.
        # Backoffs, and the turns of requests in flight, still wait: after a Ctrl-C these
        # retry at the pace orq.ai asks for, never in a tight loop.
        self._stopping = threading.Event()
        self._local = threading.local()  # per sending thread: see `repeated`
        self._halt: ApiHaltError | None = None
        self._sleep: Callable[[float], object] = sleep or self._halted.wait
        self._sleep_unsent: Callable[[float], object] = sleep or self._stopping.wait
        self.pacer = pacer or Pacer(requests_per_minute, clock=clock, sleep=self._sleep)
        self._clock = clock
        self._rng = rng or random.Random()
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._on_retry = on_retry
        self.attempts = 0  # every request sent, retries included
        # No request starts after this time (of `clock`): one whose turn at the rate limit,
        # or whose retry, comes later raises DeadlineReached unsent (apply's --max-duration;
        # the applier sets it). A request an attempt of which may have reached orq.ai (a
        # 5xx, a timeout, a dropped connection) is in flight: it goes on to its answer, so
        # that `repeated` stays true of it.
        self.deadline: float | None = None
        self._slots = threading.BoundedSemaphore(parallelism)
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

    @property
    def base_url(self) -> str:
        return str(self._http.base_url).rstrip("/")

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

    def send(self, request: Request) -> object:
        """Send one request, retrying what can be retried; for a request on a queue, the
        server's answer (parsed JSON, None for an empty body). Raise ApiError when it
        fails, and ApiHaltError (now and on every later call) when no request can succeed.

        A queue's create is not repeated once it may have reached the server (a timeout, a
        5xx, a dropped connection): a second one would make a second queue."""
        method, path = method_and_path(request)
        body = request_body(request, self.metadata_style)
        content = None if body is None else json.dumps(body).encode("utf-8")
        # Only a queue's answer says something the applier needs (an id, the items made):
        # the answers of a hundred thousand annotation requests are not parsed.
        return self._exchange(
            method,
            path,
            content,
            repeatable=request.kind != QUEUE_CREATE,
            parse=request.queue is not None,
        )

    def repeated(self) -> bool:
        """Whether the last request this thread sent went again after an attempt that may
        have reached orq.ai (a 5xx, a timeout, a dropped connection): its answer may then
        describe the second arrival of the request, not the first."""
        return bool(getattr(self._local, "repeated", False))

    def get(self, path: str, params: Mapping[str, str] | None = None) -> object:
        """A GET of `path` (with query `params`), retried as `send`; the parsed answer."""
        return self._exchange("GET", path, None, params=params)

    def _exchange(
        self,
        method: str,
        path: str,
        content: bytes | None,
        *,
        params: Mapping[str, str] | None = None,
        repeatable: bool = True,
        parse: bool = True,
    ) -> object:
        failures = 0  # answers that count against max_attempts
        error: ApiError | None = None  # the last attempt's, when it is retried
        self._local.repeated = False
        while True:
            # A slot is a request in flight (or about to be): a request that waits out its own
            # backoff holds none, so the applier's other threads keep every slot busy.
            with self._slots:
                if self._halt is not None:
                    raise self._halt
                # in flight: a write that may have reached orq.ai goes on to its answer, at
                # orq.ai's pace (a GET changes nothing: it stops at the deadline like the rest)
                if self._local.repeated and method != "GET":
                    late = None if self.deadline is None else self.deadline + LATE
                    ticket = self.pacer.wait(late)
                    if ticket is None:  # not for ever: what it may have done is unknown
                        assert error is not None
                        error.message += (
                            f" (given up: its next try came more than {duration_text(LATE)} "
                            "after the apply's deadline)"
                        )
                        error.hint = "run apply again to finish"
                        raise error
                else:
                    ticket = self.pacer.wait(self.deadline, sleep=self._sleep_unsent)
                    if ticket is None or (
                        # stop() moved the deadline while this request waited for its turn
                        self.deadline is not None and ticket.start > self.deadline
                    ):
                        raise DeadlineReached(self._waiting(error))
                if self._halt is not None:
                    raise self._halt
                outcome = self._once(ticket, method, path, content, params)
            if isinstance(outcome, httpx.Response):
                return _answer(outcome) if parse else None
            error = outcome
            if not error.retryable:
                if error.status in (401, 403):
                    raise self._stop(self._unauthorized(error))
                raise error
            halt = self._halt_for(error)
            if halt is not None:
                raise self._stop(halt)
            if error.status == 429 or isinstance(error, _Unreachable):
                continue  # the pacer holds everyone for the pause
            if not repeatable:
                error.retryable = False
                error.hint = "the request may have reached orq.ai: it is not sent again"
                raise error
            self._local.repeated = True  # sent again after an attempt that may have arrived
            if self.pacer.systemic:
                continue  # most requests fail: everyone backs off together, attempts are kept
            failures += 1
            if failures >= self.max_attempts:
                error.message += f" (gave up after {failures} attempts)"
                error.hint = error.hint or "run apply again later to finish"
                raise error
            delay = self._backoff(failures)
            if self._on_retry is not None:
                self._on_retry(error, delay)
            self._sleep(delay)

    def stop(self) -> None:
        """Start no request from now on (Ctrl-C): those waiting for their turn or a retry
        raise DeadlineReached at once, those in flight finish."""
        self.deadline = self._clock()
        self._stopping.set()  # wakes the requests waiting for their turn

    def _waiting(self, error: ApiError | None) -> str:
        """What a retried request waits out, for the apply that stops at its deadline."""
        if error is None:
            return ""
        if isinstance(error, _Unreachable):
            return f"cannot reach {self.base_url}: {error.cause}"
        if error.status is not None:
            return f"{self.base_url} answered {error.cause}"
        return f"{self.base_url}: {error.cause}"  # timed out, connection dropped

    def _stop(self, halt: ApiHaltError) -> ApiHaltError:
        """Halt every sender: the first halt is the one all of them raise."""
        if self._halt is None:
            self._halt = halt
            self._halted.set()
            self._stopping.set()
        return self._halt

    def _unauthorized(self, error: ApiError) -> ApiHaltError:
        return ApiHaltError(
            "unauthorized",
            f"orq.ai refused {self.key_source} at {self.base_url}: {error.cause}",
            hint=f"set {self.key_source.lstrip('$')} to a valid API key of this workspace "
            "(orq.ai: Settings, API Keys)",
            cause=error.cause,
        )

    def _halt_for(self, error: ApiError) -> ApiHaltError | None:
        """The halt a retryable failure leads to once retrying cannot help, if it does."""
        if isinstance(error, _Unreachable):
            waited = self.pacer.unreachable_for()
            if waited < self.unreachable_timeout:
                return None
            return ApiHaltError(
                "unreachable",
                f"cannot reach {self.base_url}: {error.cause} (for {duration_text(waited)})",
                hint="check api.base_url in orqsync.yaml and the network; "
                "api.unreachable_timeout_seconds sets how long to keep trying",
                cause=error.cause,
            )
        if error.status == 429 and (error.retry_after or 0) > self.outage_timeout:
            return ApiHaltError(
                "outage",
                f"orq.ai's rate limit asks to wait {duration_text(error.retry_after or 0)} "
                f"({error.cause})",
                hint="run apply again after that; what was sent is recorded in the state",
                cause=error.cause,
            )
        failing = self.pacer.failing_for()
        if failing < self.outage_timeout:
            return None
        return ApiHaltError(
            "outage",
            f"orq.ai at {self.base_url} has failed every request for "
            f"{duration_text(failing)}; its last answer: {error.cause}",
            hint="run apply again later to finish; api.outage_timeout_seconds sets how long "
            "to keep trying",
            cause=error.cause,
        )

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self._backoff_cap, self._backoff_base * 2 ** (attempt - 1))
        return self._rng.uniform(0, ceiling)

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def _once(
        self,
        ticket: Ticket,
        method: str,
        path: str,
        content: bytes | None,
        params: Mapping[str, str] | None = None,
    ) -> ApiError | httpx.Response:
        """One attempt; the pacer hears how it was answered. The response when it succeeded."""
        self.attempts += 1
        where = f"{method} {path}"
        try:
            response = self._http.request(method, path, content=content, params=params)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol) as exc:
            self.pacer.answered(ticket, Outcome.UNREACHABLE)
            cause = self._scrub(str(exc) or type(exc).__name__)
            return _Unreachable(
                f"{where}: cannot connect to {self.base_url} ({cause})",
                method=method,
                path=path,
                retryable=True,
                hint="check api.base_url in orqsync.yaml and your network",
                cause=cause,
            )
        except httpx.TimeoutException:
            self.pacer.answered(ticket, Outcome.FAILED)
            return ApiError(
                f"{where}: timed out", method=method, path=path, retryable=True, cause="timed out"
            )
        except httpx.TransportError as exc:
            self.pacer.answered(ticket, Outcome.FAILED)
            cause = self._scrub(f"connection failed ({type(exc).__name__}: {exc})")
            return ApiError(
                f"{where}: {cause}", method=method, path=path, retryable=True, cause=cause
            )
        status = response.status_code
        headers = rate_headers(response.headers)
        if 200 <= status < 300:
            self.pacer.answered(ticket, Outcome.OK, headers=headers)
            return response
        cause = self._scrub(f"HTTP {status}: {server_message(response)}")
        retryable = status in RETRYABLE_STATUS
        retry_after = parse_retry_after(response.headers) if retryable else None
        if status == 429:
            self.pacer.answered(ticket, Outcome.THROTTLED, retry_after=retry_after, headers=headers)
        else:
            self.pacer.answered(ticket, Outcome.FAILED if retryable else Outcome.OK)
        hint = ""
        if status in (401, 403):
            hint = "check the API key (and that it belongs to this workspace)"
        elif status == 404:
            hint = "check that the key exists in orq.ai and in definitions.yaml, and the span id"
        return ApiError(
            f"{where}: {cause}",
            method=method,
            path=path,
            status=status,
            retryable=retryable,
            retry_after=retry_after,
            hint=hint,
            cause=cause,
        )


def _answer(response: httpx.Response) -> object:
    """A success's body as JSON; None when it has none (a 204) or is not JSON."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def api_key(settings: Settings, environ: Mapping[str, str] | None = None) -> str:
    """The key requests carry: from the environment variable api.api_key_env names (the
    embedded emulator's own key for `base_url: embedded`); an error when it is not set."""
    if settings.embedded:
        return EMBEDDED_KEY
    env = os.environ if environ is None else environ
    key = env.get(settings.api_key_env, "")
    if not key:
        raise OrqsyncError(
            f"the API key is not set: ${settings.api_key_env} is empty",
            f"export {settings.api_key_env}=<your orq.ai API key>, or set api.base_url: "
            "embedded in orqsync.yaml to try orqsync against the built-in emulator",
        )
    return key


class _Unreachable(ApiError):
    """No connection could be made: refused, no such host, a TLS failure, a bad scheme."""


def make_client(
    settings: Settings,
    environ: Mapping[str, str] | None = None,
    *,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] | None = None,
    on_retry: Callable[[ApiError, float], None] | None = None,
) -> OrqClient:
    """The client the project's settings ask for; `embedded` runs the in-process emulator."""
    base_url = settings.base_url
    key = api_key(settings, environ)
    if settings.embedded:
        transport = transport or _embedded_transport(settings)
        base_url = "http://embedded.orqsync.invalid"
        key_source = "the embedded emulator's key"
    else:
        key_source = f"${settings.api_key_env}"
    return OrqClient(
        base_url,
        key,
        key_source=key_source,
        metadata_style=settings.metadata_style,
        timeout=settings.timeout_seconds,
        max_attempts=settings.max_attempts,
        unreachable_timeout=settings.unreachable_timeout_seconds,
        outage_timeout=settings.outage_timeout_seconds,
        parallelism=settings.parallelism,
        transport=transport,
        requests_per_minute=settings.requests_per_minute,
        sleep=sleep,
        on_retry=on_retry,
    )


def _embedded_transport(settings: Settings) -> httpx.BaseTransport:
    """The in-process emulator of `base_url: embedded`, stored under the project's .orqsync/;
    closing the client closes its database."""
    from orqsync.emulator import Emulator, EmulatorConfig, EmulatorTransport, EvaluationsError

    data_dir = os.path.join(settings.root, ".orqsync")
    os.makedirs(data_dir, exist_ok=True)
    evaluations = settings.emulator_evaluations
    try:
        emulator = Emulator(
            EmulatorConfig(
                api_keys=(EMBEDDED_KEY,),
                definitions_path=settings.definitions_path,
                evaluations_path=settings.path(evaluations) if evaluations else None,
                string_limit=settings.string_limit,
                db_path=os.path.join(data_dir, "emulator.db"),
            )
        )
    except EvaluationsError as exc:
        raise OrqsyncError(
            f"{exc} (api.emulator_evaluations in {PROJECT_FILE})",
            exc.hint or "fix the file of evaluator results",
        ) from None
    return EmulatorTransport(emulator, owns_emulator=True)
