"""The journal's flusher: a request counts as done only once on disk, and a failure stops the
run at once instead of after every request was sent."""

from __future__ import annotations

import threading

import pytest

from orqsync.errors import DeadlineReached
from orqsync.model import Annotation
from orqsync.planning.plan import Request, make_plan
from orqsync.remote.apply import THREADS_PER_SLOT, apply_plan
from orqsync.review.render import render_report
from orqsync.source.desired import DesiredState
from orqsync.state.files import StateFile
from orqsync.state.model import Provenance, State

SPANS = 200


class CountingApi:
    """A fake orq.ai that accepts everything. With a `gate`, every request after the first
    waits at the gate until it opens: the run's other senders are then all in flight when the
    first success is reported, whatever the scheduling."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.sent = 0
        self.lock = threading.Lock()
        self.gate = gate

    def send(self, request: Request) -> None:
        with self.lock:
            self.sent += 1
            first = self.sent == 1
        if self.gate is not None and not first:
            assert self.gate.wait(10), "the gate never opened"


class BrokenReporter:
    """Progress that cannot be written (a closed pipe) once the first request is done; it
    opens the gate as it fails."""

    def __init__(self, gate: threading.Event) -> None:
        self.gate = gate

    def started(self, total: int) -> None:
        pass

    def finished_request(self, request: Request, done: int, total: int) -> None:
        self.gate.set()
        raise BrokenPipeError("stderr is closed")

    def failed_request(self, failure: object) -> None:
        pass

    def note(self, text: str) -> None:
        pass


def a_plan():
    desired = DesiredState(
        {
            (f"t{index}", "s"): {"rating": Annotation("good", (), "annotations/a.yaml", index)}
            for index in range(SPANS)
        },
        {},
    )
    return make_plan(desired, State.new())


def test_every_request_sent_is_counted_once_on_disk(tmp_path) -> None:
    files = StateFile(str(tmp_path / "state.json"))
    api = CountingApi()
    report = apply_plan(a_plan(), api, files, State.new(), Provenance(), parallelism=4)
    assert report.complete
    assert report.done == api.sent == SPANS
    assert len(files.load().spans) == SPANS
    assert not files.has_journal()  # folded into the state file


def test_a_failure_after_sending_stops_the_run_instead_of_sending_everything(tmp_path) -> None:
    files = StateFile(str(tmp_path / "state.json"))
    gate = threading.Event()
    api = CountingApi(gate)
    parallelism = 4
    with pytest.raises(BrokenPipeError):
        apply_plan(
            a_plan(), api, files, State.new(), Provenance(), parallelism=parallelism,
            reporter=BrokenReporter(gate),
        )  # fmt: skip
    # The first request, and those its fellow senders had started when it was reported
    # (parked at the gate): one each, and under load one more each at most, taken in the
    # moment between the gate opening and the failure reaching the run (a loaded machine
    # saw 17 of 16 once in 90 runs, before and after 12d8bc0). Sending everything would be
    # SPANS.
    assert api.sent <= 2 * parallelism * THREADS_PER_SLOT < SPANS
    # what was sent is in the journal, and the next load folds it in: nothing is lost
    assert len(files.load().spans) == api.sent


class PacedApi(CountingApi):
    """A fake orq.ai client that, like OrqClient, gives each request its turn a second after
    the last, and raises DeadlineReached, unsent, for a turn after its `deadline`."""

    def __init__(self) -> None:
        super().__init__()
        self.turns = 0
        self.deadline: float | None = None

    def send(self, request: Request) -> None:
        with self.lock:
            turn, self.turns = self.turns, self.turns + 1
        if self.deadline is not None and turn > self.deadline:
            raise DeadlineReached("https://orq.test answered HTTP 503: busy")
        super().send(request)


def test_max_duration_sends_no_request_whose_turn_comes_after_it(tmp_path) -> None:
    """Every sender takes a request at once and waits in the client for its turn: an apply
    given 10 s at 30 requests a minute ran 83 s, sending what had waited. The applier gives
    the client its deadline, and a request stopped there is left, not failed."""
    files = StateFile(str(tmp_path / "state.json"))
    api = PacedApi()
    report = apply_plan(
        a_plan(), api, files, State.new(), Provenance(), parallelism=4,
        max_duration=5.0, clock=lambda: 0.0,
    )  # fmt: skip
    assert api.deadline == 5.0  # the applier's clock (0) + max_duration
    assert api.sent == report.done == 6  # the turns of seconds 0 to 5
    assert (report.stopped, report.failures, report.left) == ("max duration", (), SPANS - 6)
    assert len(files.load().spans) == 6
    # the summary says what the requests left were waiting out, when they were
    assert report.waiting == "https://orq.test answered HTTP 503: busy"
    assert render_report(report).endswith(
        f"Apply partial (max duration): 6 of {SPANS} requests done, {SPANS - 6} left; requests "
        "were waiting to retry after: https://orq.test answered HTTP 503: busy. The state is "
        "saved; --max-duration was reached; run apply again to send the rest.\n"
    )


class InterruptingApi(CountingApi):
    """The first request interrupts the main thread (Ctrl-C) and is still in flight a moment
    later, when it succeeds."""

    def send(self, request: Request) -> None:
        import _thread
        import time

        super().send(request)
        if self.sent == 1:
            _thread.interrupt_main()
            time.sleep(0.3)


class NoStderr(BrokenReporter):
    """Progress with a stderr gone with the Ctrl-C (`apply 2>&1 | tee log`)."""

    def finished_request(self, request: Request, done: int, total: int) -> None:
        pass

    def note(self, text: str) -> None:
        raise BrokenPipeError("stderr is closed")


def test_a_ctrl_c_with_stderr_gone_still_waits_for_the_requests_in_flight(tmp_path) -> None:
    """The note printed on Ctrl-C raised, skipping the wait: the journal was closed and
    discarded while a request was in flight, and its success was lost."""
    files = StateFile(str(tmp_path / "state.json"))
    report = apply_plan(
        a_plan(), InterruptingApi(), files, State.new(), Provenance(), parallelism=1,
        reporter=NoStderr(threading.Event()),
    )  # fmt: skip
    assert report.stopped == "interrupted" and report.done >= 1
    assert len(files.load().spans) == report.done  # the one in flight is recorded
