"""apply_plan: send a plan's requests and record every success durably.

Requests are grouped in chains (one span, or one feedback record); a chain runs in order on one
worker, chains run in parallel. Each success is written to the journal at once; the journal's
flusher fsyncs it, then folds it into the in-memory state and counts it done, so senders never
wait for the disk. At the end the state file is written once. A chain
whose request the API refuses stops there (its state stays as it was) and the others go on.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, cast

from orqsync.errors import ApiError, ApiHaltError, DeadlineReached, InterruptedTwiceError
from orqsync.model import Operation, SpanId, value_json
from orqsync.planning.plan import ANNOTATE, FEEDBACK_PUT, FEEDBACK_REMOVE, REMOVE, Plan, Request
from orqsync.remote import queues
from orqsync.state.files import StateFile
from orqsync.state.journal import Journal
from orqsync.state.model import (
    QUEUE_FIELDS,
    InSync,
    Provenance,
    State,
    queue_entry,
    sorted_spans,
    unconfirmed_entry,
)

# Threads per request in flight. The Api keeps `parallelism` requests in flight at most (the
# client's slots); a request waiting out a retry's backoff holds a thread but no slot, so more
# threads than slots keep every slot busy meanwhile.
THREADS_PER_SLOT = 4
QUEUE_CREATE = Operation.QUEUE_CREATE
QUEUE_DELETE = Operation.QUEUE_DELETE
QUEUE_ADD = Operation.QUEUE_ADD
REASSERTED = "reasserted"  # the journal's line for a set of a reassertion: changes nothing


class Api(Protocol):
    """What the applier needs from orq.ai: send one request or raise ApiError. It holds at
    most `parallelism` requests in flight, however many threads call it."""

    def send(self, request: Request) -> object: ...


class Reporter(Protocol):
    """Progress as it happens; the CLI draws it, tests pass a quiet one."""

    def started(self, total: int) -> None: ...

    def finished_request(self, request: Request, done: int, total: int) -> None: ...

    def failed_request(self, failure: Failure) -> None: ...

    def note(self, text: str) -> None: ...


class QuietReporter:
    def started(self, total: int) -> None:
        pass

    def finished_request(self, request: Request, done: int, total: int) -> None:
        pass

    def failed_request(self, failure: Failure) -> None:
        pass

    def note(self, text: str) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Failure:
    """A request the API refused, with where its values were declared."""

    request: Request
    message: str
    status: int | None
    path: str = ""
    line: int = 0
    cause: str = ""  # the message without the request's path, to group refusals by
    hint: str = ""  # what to do about it, when there is more to say than the cause


@dataclass(frozen=True, slots=True)
class Report:
    """What an apply did: requests sent, failures, requests left for the next run."""

    total: int
    done: int
    failures: tuple[Failure, ...] = ()
    left: int = 0
    # why requests were left: "", "max requests", "max duration", "interrupted", or the
    # reason of `halt`: "unauthorized", "unreachable", "outage"
    stopped: str = ""
    halt: ApiHaltError | None = None  # what stopped every request, when something did
    # stopped at --max-duration or by Ctrl-C: what a request left was to be retried after
    waiting: str = ""

    @property
    def complete(self) -> bool:
        return self.done == self.total


def journal_entry(
    request: Request, provenance: Provenance, request_id: str = ""
) -> dict[str, object]:
    """The effect of a successful request, as a journal line."""
    entry = _effect(request, provenance)
    if request_id:
        entry["req"] = request_id
    return entry


def _effect(request: Request, provenance: Provenance) -> dict[str, object]:
    if request.queue is not None:
        return queue_entry(request.kind, request.queue)
    if request.kind == ANNOTATE:
        entry: dict[str, object] = {
            "op": request.kind.journal_op,
            "trace_id": request.trace_id,
            "span_id": request.span_id,
            "values": {k: value_json(v) for k, v in request.items},
            "metadata": dict(request.metadata),
            "provenance": provenance.to_json(),
        }
        if request.reviews:
            entry["reviews"] = {key: review.to_json() for key, review in request.reviews}
        return entry
    if request.kind == REMOVE:
        return {
            "op": request.kind.journal_op,
            "trace_id": request.trace_id,
            "span_id": request.span_id,
            "keys": list(request.keys),
        }
    body = {k: value_json(v) for k, v in request.feedback}
    if request.kind == FEEDBACK_PUT:
        return {"op": request.kind.journal_op, "body": body, "provenance": provenance.to_json()}
    assert request.kind == FEEDBACK_REMOVE
    return {"op": request.kind.journal_op, "id": body["id"]}


def fold_success(
    state: State, entry: dict[str, object], request: Request, provenance: Provenance
) -> None:
    """What `state.fold(entry)` does with a success's journal entry, taken from the request
    at hand (its values and metadata are already in the state's form: a third of the cost)."""
    if request.kind == ANNOTATE:
        span = (request.trace_id, request.span_id)
        state.set_keys(span, request.items, request.metadata, provenance, request.reviews)
    elif request.kind == REMOVE:
        state.remove_keys((request.trace_id, request.span_id), request.keys)
    elif request.queue is not None:
        if request.kind == Operation.QUEUE_ADD:
            created = cast("list[list[str]]", entry["created"])
            state.fold_added(request.queue, frozenset((t, s) for t, s in created))
        else:
            state.fold_queue(request.kind, request.queue)
    else:
        state.fold(entry, provenance)


def _record_assertions(
    state: State,
    plan: Plan,
    finished: Counter[tuple[str, ...]],
    spans: tuple[SpanId, ...],
    provenance: Provenance,
) -> None:
    """Each reasserted span whose requests all succeeded: asserted now."""
    sent = Counter(request.chain for request in plan.requests)
    for trace_id, span_id in spans:
        chain = ("span", trace_id, span_id)
        if finished[chain] == sent[chain]:
            state.asserted[(trace_id, span_id)] = provenance.applied_at


def chains(requests: tuple[Request, ...]) -> list[list[Request]]:
    """Requests grouped by chain, each chain in plan order, chains in order of first request."""
    grouped: dict[tuple[str, ...], list[Request]] = {}
    for request in requests:
        grouped.setdefault(request.chain, []).append(request)
    return list(grouped.values())


@dataclass
class _Run:
    """The shared, lock-guarded progress of one apply."""

    plan: Plan
    journal: Journal
    state: State
    provenance: Provenance
    reporter: Reporter
    max_requests: int | None
    deadline: float | None
    clock: Callable[[], float]
    reasserting: bool = False  # sets send labels the state holds: they keep their provenance
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: int = 0
    started: int = 0
    failures: list[Failure] = field(default_factory=list)
    stopped: str = ""
    halt: ApiHaltError | None = None
    waiting: str = ""  # what a request stopped at the deadline was to be retried after
    errors: list[BaseException] = field(default_factory=list)
    finished: Counter[tuple[str, ...]] = field(default_factory=Counter)  # successes per chain
    # Each annotation queue's id by name: the state's, and those creates got in this run.
    queue_ids: dict[str, str] = field(default_factory=dict)
    # For each record held without an id: the queues its create may have made.
    found: dict[str, tuple[str, ...]] = field(default_factory=dict)
    recorded: int = 0  # records without an id written (creates that may have made a queue)

    def __post_init__(self) -> None:
        self.queue_ids.update((name, record.id) for name, record in self.state.queues.items())

    def resolved(self, request: Request) -> Request:
        """The request with its queue's id, when a create earlier in its chain made it."""
        ref = request.queue
        if ref is None or ref.id or request.kind == QUEUE_CREATE:
            return request
        with self.lock:
            queue_id = self.queue_ids.get(ref.name, "")
        return request._replace(queue=ref._replace(id=queue_id))

    def created(self, request: Request, answer: object) -> Request:
        """A create's request with the id orq.ai gave the queue (an ApiError when the answer
        holds none)."""
        assert request.queue is not None
        queue_id = queues.created_id(request, answer)
        with self.lock:
            self.queue_ids[request.queue.name] = queue_id
        return request._replace(queue=request.queue._replace(id=queue_id))

    def prepared(self, request: Request) -> tuple[Request, object, bool]:
        """The request to send, the answer it already has, and whether to send it. For a
        create or a delete of a queue the state holds without an id, the look made before
        the apply (remote/queues.py) decides: a create takes the queue found instead of
        making another; a delete deletes it, or has nothing to do."""
        ref = request.queue
        if ref is None or ref.id or request.kind not in (QUEUE_CREATE, QUEUE_DELETE):
            return request, None, True
        key = ref.was or ref.name
        candidates = self.found.get(key)
        if not candidates:  # none made (or no record without an id): create, or nothing
            return request, None, request.kind == QUEUE_CREATE
        if len(candidates) > 1:
            raise queues.ambiguous(request, self.state.queues[key], candidates)
        looked = candidates[0]
        found = ref._replace(id=looked)
        if request.kind == QUEUE_CREATE:
            # the queue holds what the earlier create sent: the state records that, and the
            # next plan updates what the file says differently since
            held = self.state.queues[ref.was or ref.name]
            sent = (held.display_name, held.description, held.project_id)
            found = found._replace(fields=tuple(zip(QUEUE_FIELDS[:3], sent, strict=True)))
            return request._replace(queue=found), {"_id": looked}, False
        return request._replace(queue=found), None, True

    def may_start(self) -> bool:
        with self.lock:
            if self.stopped:
                return False
            if self.max_requests is not None and self.started >= self.max_requests:
                self.stopped = "max requests"
                return False
            if self.deadline is not None and self.clock() >= self.deadline:
                self.stopped = "max duration"
                return False
            self.started += 1
            return True

    def sending(self, request_id: str, request: Request) -> None:
        self.journal.intend(request_id, queues.intent(request))

    def succeeded(self, request: Request, request_id: str, answer: object = None) -> None:
        """Written to the journal at once; counted done by `durable` once it is on disk."""
        if self.reasserting and request.kind == ANNOTATE:
            # The state holds these labels already; who decided them stays on record.
            entry: dict[str, object] = {"op": REASSERTED, "req": request_id}
        else:
            entry = journal_entry(request, self.provenance, request_id)
        ref = request.queue
        if ref is not None and request.kind == Operation.QUEUE_ADD:
            # only an adopted queue holds spans that are not orqsync's (its answer lists
            # those the add made; `answer` is None when that cannot be told)
            made = queues.created_spans(answer, ref.spans) if ref.adopting else ref.spans
            entry["created"] = [list(span) for span in sorted_spans(made)]
        self.journal.submit(entry, (entry, request))

    def unconfirmed(self, request: Request, request_id: str) -> None:
        """A create that may have made its queue: the state keeps a record without an id,
        which the next apply looks for in orq.ai (not counted done, but written)."""
        assert request.queue is not None
        entry = unconfirmed_entry(request.queue, queues.now())
        entry["req"] = request_id
        with self.lock:
            self.recorded += 1
        self.journal.submit(entry, (entry, None))

    def durable(self, batch: list[object]) -> None:
        """Successes now on disk (called by the journal's flusher, in submission order)."""
        total = len(self.plan.requests)
        # The tokens `succeeded` submitted: the journal hands them back as they were.
        for entry, request in cast("list[tuple[dict[str, object], Request | None]]", batch):
            if request is None:  # an unconfirmed create: recorded, not done
                with self.lock:
                    self.state.fold(entry)
                continue
            with self.lock:
                if entry["op"] != REASSERTED:
                    fold_success(self.state, entry, request, self.provenance)
                self.done += 1
                self.finished[request.chain] += 1
                done = self.done
            self.reporter.finished_request(request, done, total)

    def halted(self, error: ApiHaltError) -> None:
        """No request can succeed: nobody starts another; the first halt is the one kept."""
        with self.lock:
            if self.halt is None:
                self.halt = error
                self.stopped = error.reason

    def failed(self, request: Request, error: ApiError) -> None:
        path, line = _origin(self.plan, request)
        hint = queues.hint(request, error) or error.hint
        failure = Failure(request, error.message, error.status, path, line, error.cause, hint)
        with self.lock:
            self.failures.append(failure)
        self.reporter.failed_request(failure)


def _origin(plan: Plan, request: Request) -> tuple[str, int]:
    """The file and line that asked for a request's first value (or for a queue's request,
    the queue's file)."""
    if request.queue is not None:
        name = request.queue.name
        return next(((q.path, q.line) for q in plan.queues if q.name == name), ("", 0))
    keys = {key for key, _ in request.items} or set(request.keys)
    for change in plan.changes:
        if (
            change.trace_id == request.trace_id
            and change.path
            and (change.span_id == request.span_id and change.key in keys)
        ):
            return change.path, change.line
    return "", 0


def _worker(
    run: _Run, api: Api, queue: Iterator[tuple[int, list[Request]]], queue_lock: threading.Lock
) -> None:
    try:
        while True:
            with queue_lock:
                item = next(queue, None)
            if item is None:
                return
            number, chain = item
            for step, request in enumerate(chain):
                if not run.may_start():
                    return
                request_id = f"{run.run_id}.{number}.{step}"
                request = run.resolved(request)
                try:
                    request, answer, send = run.prepared(request)
                    if send:
                        run.sending(request_id, request)
                        answer = api.send(request)
                        if request.kind == QUEUE_ADD and queues.repeated(api):
                            answer = None  # it may list a second arrival's items: not telling
                    if request.kind == QUEUE_CREATE:
                        request = run.created(request, answer)
                except DeadlineReached as reached:  # its turn came too late: unsent, not failed
                    with run.lock:
                        run.stopped = run.stopped or "max duration"
                        run.waiting = run.waiting or reached.waiting
                    return
                except ApiHaltError as error:
                    if queues.uncertain(request, error):
                        run.unconfirmed(request, request_id)
                    run.halted(error)
                    return
                except ApiError as error:
                    if not queues.gone(request, error):
                        if queues.uncertain(request, error):
                            run.unconfirmed(request, request_id)
                        run.failed(request, error)
                        break
                    answer = None  # deleted already: what the request asked for
                run.succeeded(request, request_id, answer)
    except BaseException as exc:  # a bug: stop everyone, surface it from the main thread
        with run.lock:
            run.errors.append(exc)
            run.stopped = "error"


def apply_plan(
    plan: Plan,
    api: Api,
    state_file: StateFile,
    state: State,
    provenance: Provenance,
    *,
    parallelism: int = 8,
    reporter: Reporter | None = None,
    max_requests: int | None = None,
    max_duration: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    in_sync: InSync | None = None,
    reassertion: tuple[SpanId, ...] | None = None,
) -> Report:
    """Send `plan` against `state` (mutated as requests succeed) and write the state file.
    `in_sync` (the plan's) is recorded in the state only when every request succeeded.

    `reassertion`: the plan reasserts these spans (planning/reassert.py); each whose
    requests all succeeded is recorded as asserted at the provenance's time."""
    reporter = reporter or QuietReporter()
    total = len(plan.requests)
    deadline = clock() + max_duration if max_duration is not None else None
    if deadline is not None and hasattr(api, "deadline"):
        # Threads start their requests at once and wait in the client for their turn at the
        # rate limit: the client, not only may_start, must not send past the deadline.
        api.deadline = deadline
    # Before anything is sent: the queues earlier creates may have made (remote/queues.py).
    get = getattr(api, "get", None)
    names = queues.unconfirmed_names(plan.requests, state.queues) if get else []
    try:
        found = queues.look_for_made(get, names, state.queues) if get and names else {}
    except DeadlineReached as reached:  # the look itself ran out of time: nothing was sent
        return Report(total, 0, left=total, stopped="max duration", waiting=reached.waiting)
    reporter.started(total)
    journal = state_file.open_journal(state)
    run = _Run(
        plan,
        journal,
        state,
        provenance,
        reporter,
        max_requests,
        deadline,
        clock,
        reassertion is not None,
        found=found,
    )
    journal.start(run.durable)
    queue = enumerate(chains(plan.requests))
    queue_lock = threading.Lock()
    workers = [
        threading.Thread(target=_worker, args=(run, api, queue, queue_lock), daemon=True)
        for _ in range(max(1, min(parallelism * THREADS_PER_SLOT, total)))
    ]
    abandoned = False
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            while worker.is_alive():
                worker.join(0.2)
    except KeyboardInterrupt:
        with run.lock:
            run.stopped = "interrupted"
        if hasattr(api, "stop"):
            api.stop()  # requests waiting for their turn at the rate limit are not sent
        # a stderr gone with the Ctrl-C (`apply 2>&1 | tee log`) must not skip the wait below
        with contextlib.suppress(OSError, ValueError):
            reporter.note(
                "Interrupted: no request starts now; those in flight finish (Ctrl-C again to "
                "stop without waiting for them)."
            )
        try:
            for worker in workers:
                if worker.ident is not None:  # a Ctrl-C while they started: not all were
                    worker.join()
        except KeyboardInterrupt:
            # Requests are still in flight and may still change the state: leave it as it is
            # on disk. The journal has every success so far; the next apply folds it in.
            abandoned = True
            raise InterruptedTwiceError(
                "interrupted again: stopped without waiting for the requests in flight. "
                f"Every request that succeeded is recorded in {state_file.display}.journal",
                "run `orqsync apply` again: it finishes the interrupted apply and sends only "
                "what is still missing",
            ) from None
    finally:
        journal.close()
        # Fold what finished into the state file even when stopped early: nothing is lost.
        if abandoned:
            pass  # the journal is the record until the next apply folds it in
        elif run.done or run.recorded or journal.continued:
            complete = run.done == total and not (run.failures or run.errors or run.stopped)
            if reassertion is not None:
                _record_assertions(state, plan, run.finished, reassertion, provenance)
            # A reassertion changes no label: the record it carries stays true even when
            # it stopped early.
            keep = complete or reassertion is not None
            state_file.write(state, in_sync if keep else None)
        else:
            state_file.discard_journal()
    if run.errors:
        raise run.errors[0]
    return Report(
        total=total,
        done=run.done,
        failures=tuple(run.failures),
        left=total - run.done - len(run.failures),
        stopped=run.stopped if run.stopped != "error" else "",
        halt=run.halt,
        waiting=run.waiting,
    )
