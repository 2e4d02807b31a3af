"""The emulator core: routing, auth, faults and the request log around rules and store."""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from time import sleep  # a name of this module: tests record the injected latency
from types import MappingProxyType
from urllib.parse import unquote

from . import feedback_rules, queue_routes, rules
from .config import EmulatorConfig
from .definitions import DEFAULT_DEFINITIONS, Definition, load_definitions
from .evaluations import EvaluatorResult, check_results, load_evaluations
from .faults import NO_FAULT, Fault, FaultDecision, FaultInjector
from .ids import new_ulid
from .inspection import handle_inspection
from .response import Response, json_response
from .store import Store

_ANNOTATION_PATH = re.compile(r"/v2/traces/([^/]+)/spans/([^/]+)/annotation")
_UNAUTHORIZED = {
    "code": "unauthorized",
    "message": "Authorization token is invalid",
    "category": "unauthorized",
}
_SERVER_ERROR_BODIES = {
    500: ("internal_server_error", "Internal server error"),
    502: ("bad_gateway", "Bad gateway"),
    503: ("service_unavailable", "Service unavailable"),
}


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """One API request as the log keeps it; status 0 means the connection was dropped."""

    seq: int
    method: str
    path: str
    status: int
    fault: str | None
    at: float = 0.0  # seconds since the emulator started (monotonic), when it answered


_DROPPED = Response(0, {}, b"", drop=True)


class Emulator:
    """A local orq.ai: `handle` answers one HTTP request; safe to call from many threads."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.definitions: Mapping[str, Definition] = (
            load_definitions(config.definitions_path)
            if config.definitions_path is not None
            else DEFAULT_DEFINITIONS
        )
        path = config.evaluations_path
        self._file_results: Mapping[str, EvaluatorResult] = MappingProxyType(
            load_evaluations(path) if path is not None else {}
        )
        # Replaced, never changed in place: a request reads it without the lock.
        self._results: Mapping[str, EvaluatorResult] = self._file_results
        self._results_lock = threading.Lock()
        self._keys = frozenset(config.api_keys)
        self._faults = FaultInjector(config.faults)
        self._started = time.monotonic()
        self._store = Store(config.db_path)
        self._queues = queue_routes.QueueApi(
            self._store, config, self.definitions, lambda: self._results
        )
        self._log_lock = threading.Lock()
        self._log: list[LoggedRequest] = []
        self._by_status: Counter[int] = Counter()
        self._by_fault: Counter[str] = Counter()

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Response:
        """Answer one request. `path` may carry a query string; header names are any case."""
        target, _, query = path.partition("?")
        method = method.upper()
        if target == "/_emulator" or target.startswith("/_emulator/"):
            return handle_inspection(self, method, target, query, body)
        decision = self._faults.decide() if target.startswith("/v2/") else NO_FAULT
        if decision.latency_s > 0:
            sleep(decision.latency_s)
        response = self._respond(decision, method, target, query, headers, body)
        if decision.headers and not response.drop:
            response = dataclasses.replace(
                response, headers={**response.headers, **decision.headers}
            )
        self._record(method, target, response.status, decision.fault)
        return response

    def _respond(
        self,
        decision: FaultDecision,
        method: str,
        target: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> Response:
        fault = decision.fault
        if fault in (Fault.RATE_LIMITED, Fault.BURST_429):
            return json_response(
                429,
                {
                    "code": "too_many_requests",
                    "message": "Rate limit exceeded",
                    "category": "rate_limited",
                },
            )
        if fault is Fault.SERVER_ERROR:
            code, message = _SERVER_ERROR_BODIES[decision.status]
            return json_response(
                decision.status, {"code": code, "message": message, "category": "server_error"}
            )
        if fault is Fault.DROP_BEFORE:
            return _DROPPED
        response = self._api(method, target, query, headers, body)
        return _DROPPED if fault is Fault.DROP_AFTER else response

    def _api(
        self, method: str, target: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> Response:
        allow = queue_routes.allowed_methods(target)
        if allow is not None:
            if method not in allow.split(", "):
                return _method_not_allowed(allow)
            if not self._authorized(headers):
                return json_response(401, _UNAUTHORIZED)
            return self._queues.handle(method, target, query, body)
        match = _ANNOTATION_PATH.fullmatch(target)
        if match is not None:
            if method not in ("POST", "DELETE"):
                return _method_not_allowed("POST, DELETE")
            if not self._authorized(headers):
                return json_response(401, _UNAUTHORIZED)
            trace_id, span_id = unquote(match[1]), unquote(match[2])
            try:
                if method == "POST":
                    self._annotate(trace_id, span_id, body)
                else:
                    self._remove_annotations(trace_id, span_id, body)
            except rules.ApiError as error:
                return json_response(
                    error.status,
                    {"code": error.code, "message": error.message, "category": error.category},
                )
            return json_response(200, {})
        if target in ("/v2/feedback", "/v2/feedback/remove"):
            if method != "POST":
                return _method_not_allowed("POST")
            if not self._authorized(headers):
                return json_response(401, _UNAUTHORIZED)
            try:
                if target == "/v2/feedback":
                    return json_response(200, self._put_feedback(body))
                return json_response(200, self._remove_feedback(body))
            except rules.ApiError as error:
                return json_response(error.status, {"message": error.message})
        return json_response(404, {"message": "Not found"})

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        value = _header(headers, "authorization")
        if value is None:
            return False
        scheme, _, token = value.strip().partition(" ")
        return scheme.lower() == "bearer" and token.strip() in self._keys

    def _span_known(self, trace_id: str, span_id: str) -> bool:
        spans = self.config.known_spans
        return spans is None or (trace_id, span_id) in spans

    def _annotate(self, trace_id: str, span_id: str, body: bytes) -> None:
        payload = rules.parse_json(body) if body else None
        write = rules.check_annotation_post(
            payload,
            trace_id=trace_id,
            span_id=span_id,
            span_known=self._span_known(trace_id, span_id),
            definitions=self.definitions,
            evaluations=self._results,
            string_limit=self.config.string_limit,
            workspace=self.config.workspace,
        )
        corrections = [
            (fix.parent_annotation_id, fix.value, fix.explanation) for fix in write.corrections
        ]
        self._store.put_annotations(trace_id, span_id, write.items, write.metadata, corrections)

    def _remove_annotations(self, trace_id: str, span_id: str, body: bytes) -> None:
        payload = rules.parse_json(body) if body.strip() else None
        removal = rules.check_annotation_delete(
            payload,
            trace_id=trace_id,
            span_id=span_id,
            span_known=self._span_known(trace_id, span_id),
            definitions=self.definitions,
            evaluations=self._results,
            workspace=self.config.workspace,
        )
        self._store.delete_annotations(trace_id, span_id, removal.keys, removal.parent_ids)

    def _put_feedback(self, body: bytes) -> dict[str, object]:
        payload = rules.parse_json(body) if body else None
        record = feedback_rules.check_feedback(payload, new_id=new_ulid())
        self._store.put_feedback(record)
        return record

    def _remove_feedback(self, body: bytes) -> dict[str, str]:
        payload = rules.parse_json(body) if body else None
        removal = feedback_rules.check_feedback_removal(payload)
        if not self._store.remove_feedback(removal["id"], removal["trace_id"]):
            raise rules.not_found(
                "feedback_not_found",
                f"Feedback with id {removal['id']} for trace {removal['trace_id']} was not found.",
            )
        return removal

    def _record(self, method: str, path: str, status: int, fault: Fault | None) -> None:
        with self._log_lock:
            name = fault.value if fault is not None else None
            at = time.monotonic() - self._started
            self._log.append(LoggedRequest(len(self._log) + 1, method, path, status, name, at))
            self._by_status[status] += 1
            if name is not None:
                self._by_fault[name] += 1

    # Inspection: the Python side of /_emulator/, also handy in tests.

    def annotations(
        self, trace_id: str | None = None, span_id: str | None = None
    ) -> list[dict[str, object]]:
        """Stored annotations as `{trace_id, span_id, key, value, metadata}`, sorted."""
        return self._store.annotations(trace_id, span_id)

    def corrections(
        self, trace_id: str | None = None, span_id: str | None = None
    ) -> list[dict[str, object]]:
        """Stored corrections of evaluator results as `{trace_id, span_id, parent_annotation_id,
        value, explanation, metadata}` (explanation None when there is none), sorted."""
        return self._store.corrections(trace_id, span_id)

    def span(self, trace_id: str, span_id: str) -> dict[str, dict[str, object]]:
        """One span's annotations: `{"annotations": {key: value}, "metadata": {key: metadata},
        "corrections": {parent_annotation_id: {"value": ..., "explanation": ...}}}`."""
        rows = self._store.annotations(trace_id, span_id)
        fixes = self._store.corrections(trace_id, span_id)
        return {
            "annotations": {str(row["key"]): row["value"] for row in rows},
            "metadata": {str(row["key"]): row["metadata"] for row in rows},
            "corrections": {
                str(fix["parent_annotation_id"]): {
                    "value": fix["value"],
                    "explanation": fix["explanation"],
                }
                for fix in fixes
            },
        }

    def evaluator_results(self) -> list[dict[str, object]]:
        """The evaluator results corrections may name: the file's in file order, then those
        added at run time in the order added."""
        return [result.as_dict() for result in self._results.values()]

    def add_evaluator_results(
        self, results: Sequence[Mapping[str, object]]
    ) -> list[dict[str, object]]:
        """Make more evaluator results known, each a mapping as the file writes it. The first
        problem (a bad field, an id listed twice or already known) raises EvaluationsError and
        adds none. Returns the added results. `reset` forgets them; the file's stay."""
        with self._results_lock:
            added = check_results(results, self._results)
            merged = dict(self._results)
            merged.update((result.id, result) for result in added)
            self._results = MappingProxyType(merged)
        return [result.as_dict() for result in added]

    def feedback(self) -> list[dict[str, object]]:
        """Stored feedback records in the order they were first stored."""
        return self._store.feedback()

    def queues(self) -> list[dict[str, object]]:
        """Stored annotation queues as the API answers them, oldest first."""
        return self._queues.all_queues()

    def queue_items(self, queue_id: str) -> list[dict[str, object]]:
        """The queue's items as the API answers them, in the order they were added ([] for an
        unknown queue)."""
        return self._queues.all_items(queue_id)

    def requests(self, since: int = 0) -> list[LoggedRequest]:
        """API requests logged after sequence number `since` (sequence numbers start at 1)."""
        with self._log_lock:
            return self._log[max(since, 0) :]

    def request_count(self) -> int:
        """How many API requests were logged since the start or the last reset."""
        with self._log_lock:
            return len(self._log)

    def stats(self) -> dict[str, object]:
        """Request counts per status and per fault, and the stored record counts (annotations,
        corrections, feedback, queues, queue_items)."""
        with self._log_lock:
            total = len(self._log)
            by_status = {str(status): count for status, count in sorted(self._by_status.items())}
            by_fault = dict(sorted(self._by_fault.items()))
        return {
            "requests": total,
            "by_status": by_status,
            "faults": by_fault,
            **self._store.counts(),
        }

    def reset(self) -> None:
        """Wipe annotations, corrections, feedback, annotation queues and their items, the
        evaluator results added at run time and the request log; reseed the faults. The
        evaluations file's results stay."""
        self._store.reset()
        with self._results_lock:
            self._results = self._file_results
        with self._log_lock:
            self._log.clear()
            self._by_status.clear()
            self._by_fault.clear()
        self._faults.reset()

    def close(self) -> None:
        """Close the database."""
        self._store.close()

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    for key, candidate in headers.items():
        if key.lower() == name:
            return candidate
    return None


def _method_not_allowed(allow: str) -> Response:
    return json_response(405, {"message": "Method not allowed"}, {"Allow": allow})
