"""Annotation queues, part by part: the planner, the state's record, the client, the files."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from conftest import Project

from orqsync.errors import ApiError
from orqsync.model import Operation, QueueRef
from orqsync.planning.plan import Plan, Request
from orqsync.planning.queues import plan_queues
from orqsync.remote.client import OrqClient
from orqsync.remote.queues import now
from orqsync.source.queues import DesiredQueue
from orqsync.state.codec import parse_state, render_state
from orqsync.state.model import QueueRecord, State, queue_entry

MakeProject = Callable[..., Project]
PROJECT = "01JQ3M2Z8K4N6P7R9S0T1V2W3X"
RATING = "01JQ3M30A1B2C3D4E5F6G7H8J9"
QUEUE_ID = "01JQ4AAAAAAAAAAAAAAAAAAAAA"


def queue(name: str = "triage", **fields: object) -> DesiredQueue:
    values: dict[str, object] = {
        "display_name": "Triage",
        "description": "",
        "project_id": PROJECT,
        "path": "queues/triage.yaml",
        "line": 2,
    }
    values.update(fields)
    return DesiredQueue(name, **values)  # type: ignore[arg-type]


def spans(count: int, prefix: str = "t") -> frozenset[tuple[str, str]]:
    return frozenset((f"{prefix}{n:05d}", f"s{n:05d}") for n in range(count))


def record(members: frozenset[tuple[str, str]] = frozenset(), **fields: object) -> QueueRecord:
    values: dict[str, object] = {"display_name": "Triage", "description": "", "project_id": PROJECT}
    values.update(fields)
    return QueueRecord(QUEUE_ID, **values, spans=members)  # type: ignore[arg-type]


def shapes(requests: list[Request]) -> list[tuple[str, str, int]]:
    out = []
    for request in requests:
        assert request.queue is not None
        out.append((request.kind.value, request.queue.id, len(request.queue.spans)))
    return out


def test_a_new_queue_is_created_then_given_its_definitions_then_filled_a_thousand_at_a_time():
    wanted = queue(definitions=("rating",), human_review_ids=(RATING,))
    changes, requests = plan_queues((wanted,), {"triage": spans(2500)}, {})
    assert shapes(requests) == [
        ("queue_create", "", 0),
        ("queue_update", "", 0),  # human_review_ids: orq.ai ignores them beside project_id
        ("queue_add", "", 1000),
        ("queue_add", "", 1000),
        ("queue_add", "", 500),
    ]
    assert requests[0].queue and dict(requests[0].queue.fields) == {
        "display_name": "Triage",
        "description": "",
        "project_id": PROJECT,
    }
    assert requests[1].queue and dict(requests[1].queue.fields) == {"human_review_ids": (RATING,)}
    (change,) = changes
    assert (change.action, len(change.entering)) == ("create", 2500)
    assert ("definitions", (), ("rating",)) in change.fields


def test_a_queue_in_sync_plans_nothing():
    assert plan_queues((queue(),), {"triage": spans(3)}, {"triage": record(spans(3))}) == ([], [])


def test_spans_that_move_take_one_removal_and_one_addition():
    held = spans(100)
    wanted = (held - spans(50)) | spans(50, prefix="u")
    changes, requests = plan_queues((queue(),), {"triage": wanted}, {"triage": record(held)})
    assert shapes(requests) == [("queue_remove", QUEUE_ID, 50), ("queue_add", QUEUE_ID, 50)]
    assert changes[0].action == "members"


def test_fields_and_definitions_that_change_share_one_update():
    wanted = queue(display_name="Triage v2", definitions=("rating",), human_review_ids=(RATING,))
    changes, requests = plan_queues((wanted,), {"triage": frozenset()}, {"triage": record()})
    assert len(requests) == 1 and requests[0].queue is not None
    assert dict(requests[0].queue.fields) == {
        "display_name": "Triage v2",
        "human_review_ids": (RATING,),
    }
    assert changes[0].fields == (
        ("display_name", "Triage", "Triage v2"),
        ("definitions", (), ("rating",)),
    )


def test_a_new_project_sends_the_definitions_again_in_a_request_of_their_own():
    wanted = queue(project_id="01JQ5BBBBBBBBBBBBBBBBBBBBB", human_review_ids=(RATING,))
    wanted = queue(
        project_id="01JQ5BBBBBBBBBBBBBBBBBBBBB",
        definitions=("rating",),
        human_review_ids=(RATING,),
    )
    held = record(human_review_ids=(RATING,))
    _, requests = plan_queues((wanted,), {"triage": frozenset()}, {"triage": held})
    assert [r.queue and dict(r.queue.fields) for r in requests] == [
        {"project_id": "01JQ5BBBBBBBBBBBBBBBBBBBBB"},
        {"human_review_ids": (RATING,)},
    ]
    state = State("lineage", queues={"triage": held})
    for request in requests:
        assert request.queue is not None
        state.fold_queue(request.kind, request.queue)
    assert state.queues["triage"].human_review_ids == (RATING,)


def test_a_queue_no_file_declares_is_deleted_and_only_orqsyncs_spans_leave():
    changes, requests = plan_queues((), {}, {"old": record(spans(3))})
    assert shapes(requests) == [("queue_delete", QUEUE_ID, 0)]
    assert (changes[0].action, len(changes[0].leaving)) == ("delete", 3)


def test_an_id_in_a_file_under_a_new_name_is_the_same_queue_renamed():
    wanted = queue("renamed", id=QUEUE_ID)
    changes, requests = plan_queues((wanted,), {"renamed": spans(2)}, {"triage": record(spans(2))})
    assert [(r.kind, r.queue and r.queue.was) for r in requests] == [
        (Operation.QUEUE_UPDATE, "triage")
    ]
    assert changes[0].was == "triage"


def test_an_id_that_contradicts_the_state_is_refused_where_it_is_written():
    wanted = queue(id="01JQ6CCCCCCCCCCCCCCCCCCCCC")
    with pytest.raises(Exception, match=r"queues/triage.yaml:2: the queue triage adopts id"):
        plan_queues((wanted,), {"triage": frozenset()}, {"triage": record()})


def test_the_state_records_queues_on_lines_of_their_own_and_reads_them_back():
    state = State(
        "lineage", serial=3, queues={"triage": record(spans(2), human_review_ids=(RATING,))}
    )
    text = render_state(state)
    line = next(line for line in text.splitlines() if line.startswith('{"name":"triage"'))
    assert line.startswith(f'{{"name":"triage","id":"{QUEUE_ID}"')
    assert parse_state(text, "state.json").queues == state.queues
    assert '"queues"' not in render_state(State("lineage"))  # no queues: the old layout


def test_a_journal_line_of_a_create_carries_the_id_it_got():
    state = State("lineage")
    ref = QueueRef("triage", QUEUE_ID, (("display_name", "Triage"), ("project_id", PROJECT)))
    state.fold(queue_entry(Operation.QUEUE_CREATE, ref))
    added = QueueRef("triage", QUEUE_ID, spans=(("t", "s"),))
    state.fold(queue_entry(Operation.QUEUE_ADD, added))
    assert state.queues["triage"] == QueueRecord(
        QUEUE_ID, "Triage", "", PROJECT, (), frozenset({("t", "s")})
    )
    state.fold(queue_entry(Operation.QUEUE_DELETE, QueueRef("triage", QUEUE_ID)))
    assert state.queues == {}


def client(handler: Callable[[httpx.Request], httpx.Response]) -> OrqClient:
    return OrqClient(
        "https://api.example.test",
        "key",
        transport=httpx.MockTransport(handler),
        sleep=lambda _: None,
        rng=random.Random(1),
    )


@pytest.mark.parametrize(
    "failure",
    [httpx.Response(503, text="unavailable"), httpx.ReadTimeout("timed out")],
    ids=["5xx", "timeout"],
)
def test_a_create_that_may_have_reached_the_server_is_not_sent_twice(
    failure: httpx.Response | Exception,
) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if isinstance(failure, Exception):
            raise failure
        return failure

    create = Request(Operation.QUEUE_CREATE, "", queue=QueueRef("triage", "", (("a", "b"),)))
    with pytest.raises(ApiError) as caught:
        client(handler).send(create)
    assert len(sent) == 1
    assert caught.value.hint == "the request may have reached orq.ai: it is not sent again"


def test_a_create_refused_by_the_rate_limit_is_sent_again_and_its_answer_returned() -> None:
    answers = [
        httpx.Response(429, headers={"Retry-After": "0"}, json={"message": "slow down"}),
        httpx.Response(200, json={"_id": QUEUE_ID}),
    ]
    create = Request(Operation.QUEUE_CREATE, "", queue=QueueRef("triage", "", (("a", "b"),)))
    assert client(lambda request: answers.pop(0)).send(create) == {"_id": QUEUE_ID}


def test_a_queue_delete_goes_without_a_body() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    answer = client(handler).send(
        Request(Operation.QUEUE_DELETE, "", queue=QueueRef("triage", QUEUE_ID))
    )
    assert answer is None
    assert (seen[0].method, seen[0].url.path, seen[0].content) == (
        "DELETE",
        f"/v2/annotation-queues/{QUEUE_ID}",
        b"",
    )


DEFINITIONS = f"""\
version: 1
definitions:
  rating: {{type: single_select, options: [good, bad], id: {RATING}}}
  notes: {{type: text}}
"""
ANNOTATIONS = """\
version: 1
spans:
  - trace_id: t1
    span_id: s1
    annotations: {rating: good}
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "version: 1\nname: triage\nproject_id: p\ndefinitions: [notes]\n",
            'queues/q.yaml:4:15: definitions.yaml gives "notes" no id; a queue names its '
            "definitions by id",
        ),
        (
            "version: 1\nname: triage\nproject_id: p\ndefinitions: [ratin]\n",
            'queues/q.yaml:4:15: "ratin" is not a key of definitions.yaml',
        ),
        (
            "version: 1\nname: triage\n",
            'queues/q.yaml:2:7: the queue "triage" names no project',
        ),
        (
            "version: 1\nname: triage\nproject_id: p\nselect:\n  - where: {rating: meh}\n",
            'queues/q.yaml:5:21: rating has no option "meh"',
        ),
        (
            "version: 1\nname: triage\nproject_id: p\nselect:\n  - unlabelled: ratings\n",
            'queues/q.yaml:5:17: "ratings" is not a key of definitions.yaml',
        ),
        (
            "version: 1\nname: Triage Queue\nproject_id: p\n",
            "queues/q.yaml:2:7: ",
        ),
        (
            "version: 1\nname: triage\nproject_id: p\nspans:\n  - {trace_id: t1}\n",
            "queues/q.yaml:5:5: ",
        ),
    ],
    ids=[
        "definition-without-id",
        "unknown-definition",
        "no-project",
        "unknown-option",
        "unknown-unlabelled-key",
        "bad-name",
        "span-without-span-id",
    ],
)
def test_a_bad_queue_file_is_refused_where_the_problem_is(
    make_project: MakeProject, text: str, expected: str
) -> None:
    project = make_project(definitions=DEFINITIONS, **{"annotations/a.yaml": ANNOTATIONS})
    project.write("queues/q.yaml", text)
    for command in (("validate",), ("plan",)):
        result = project.run(*command)
        assert result.exit_code == 1, result.output
        assert expected in result.stderr, result.stderr
        assert "Traceback" not in result.output


def test_two_files_that_declare_one_queue_name_each_other(make_project: MakeProject) -> None:
    project = make_project(definitions=DEFINITIONS, **{"annotations/a.yaml": ANNOTATIONS})
    project.write("queues/a.yaml", "version: 1\nname: triage\nproject_id: p\n")
    project.write("queues/b.yaml", "version: 1\nname: triage\nproject_id: p\n")
    result = project.run("validate")
    assert result.exit_code == 1
    assert 'queues/b.yaml:2: the queue name "triage" is also declared in queues/a.yaml:2' in (
        result.stderr
    )


def test_queue_files_are_not_read_as_annotation_files(
    make_project: MakeProject, tmp_path: Path
) -> None:
    project = make_project(definitions=DEFINITIONS, **{"annotations/a.yaml": ANNOTATIONS})
    config = project.root / "orqsync.yaml"
    config.write_text(
        config.read_text().replace('["annotations/**/*.yaml"]', '["**/*.yaml"]')
        + 'queues: ["annotations/queues/*.yaml"]\nproject_id: p\n'
    )
    project.write(
        "annotations/queues/q.yaml",
        "version: 1\nname: triage\nselect:\n  - where: {rating: good}\n",
    )
    result = project.run("validate")
    assert result.exit_code == 0, result.output
    assert "Valid: 1 file, 1 annotation on 1 span, 0 feedback records, 1 annotation queue." in (
        result.stdout
    )
    result = project.run("plan", "--format", "json")
    assert '"queue_add"' in result.stdout


def test_targets_leave_the_queues_alone(make_project: MakeProject) -> None:
    project = make_project(definitions=DEFINITIONS, **{"annotations/a.yaml": ANNOTATIONS})
    project.write(
        "queues/q.yaml",
        "version: 1\nname: triage\nproject_id: p\nspans: [{trace_id: t1, span_id: s1}]\n",
    )
    assert '"queue_' in project.run("plan", "--format", "json").stdout
    assert '"queue_' not in project.run("plan", "--format", "json", "--target", "t1").stdout


class FlakyApi:
    """orq.ai in miniature for the applier: queues get ids; the first create fails with a
    503 when `fail_first_create` (and makes the queue all the same when `made_anyway`);
    `get` lists the queues, newest first, as GET /v2/annotation-queues does."""

    def __init__(self, fail_first_create: bool = False, made_anyway: bool = False) -> None:
        self.sent: list[Request] = []
        self.fail = fail_first_create
        self.made_anyway = made_anyway
        self.queues: list[dict[str, object]] = []

    def send(self, request: Request) -> object:
        self.sent.append(request)
        if request.kind == Operation.QUEUE_CREATE:
            assert request.queue is not None
            made = {
                "_id": f"01JQ7{len(self.queues) + 1:021d}",
                "created": now(),
                **dict(request.queue.fields),
            }
            if self.fail:
                self.fail = False
                if self.made_anyway:
                    self.queues.insert(0, made)
                raise ApiError("POST /v2/annotation-queues: HTTP 503", status=503)
            self.queues.insert(0, made)
            return made
        assert request.queue is None or request.queue.id, "a request without its queue's id"
        return None

    def get(self, path: str, params: dict[str, str]) -> object:
        assert path == "/v2/annotation-queues"
        return {"object": "list", "data": self.queues, "has_more": False}


def test_an_apply_sends_the_id_a_create_got_to_the_rest_of_the_chain(tmp_path: Path) -> None:
    from orqsync.remote.apply import apply_plan
    from orqsync.state.files import StateFile
    from orqsync.state.model import Provenance

    wanted = queue(definitions=("rating",), human_review_ids=(RATING,))
    _, requests = plan_queues((wanted,), {"triage": spans(1500)}, {})
    plan = Plan((), tuple(requests))
    api = FlakyApi()
    state = State.new()
    report = apply_plan(plan, api, StateFile(str(tmp_path / "state.json")), state, Provenance())
    assert report.complete
    new_id = "01JQ7" + "1".zfill(21)
    assert [r.queue.id for r in api.sent if r.queue] == ["", new_id, new_id, new_id]
    assert state.queues["triage"].id == new_id
    assert len(state.queues["triage"].spans) == 1500
    # what the state file holds is what the journal and the fold made of it
    written = parse_state((tmp_path / "state.json").read_text(), "state.json")
    assert written.queues == state.queues


@pytest.mark.parametrize("made_anyway", [False, True], ids=["not-made", "made-anyway"])
def test_a_create_that_met_a_5xx_is_looked_for_before_it_is_sent_again(
    tmp_path: Path, made_anyway: bool
) -> None:
    from orqsync.remote.apply import apply_plan
    from orqsync.state.files import StateFile
    from orqsync.state.model import Provenance

    files = StateFile(str(tmp_path / "state.json"))
    wanted = (queue(), queue("other", display_name="Other"))
    members = {"triage": spans(3), "other": spans(2, prefix="u")}
    _, requests = plan_queues(wanted, members, {})
    api = FlakyApi(fail_first_create=True, made_anyway=made_anyway)
    state = State.new()
    report = apply_plan(Plan((), tuple(requests)), api, files, state, Provenance(), parallelism=1)
    assert (report.done, len(report.failures), report.left) == (2, 1, 1)
    assert "the next apply looks for it in orq.ai" in report.failures[0].hint
    (failed,) = [name for name, record in state.queues.items() if record.unconfirmed]
    # the record without an id survives in the state file
    assert parse_state((tmp_path / "state.json").read_text(), "s").queues[failed].id == ""
    _, again = plan_queues(wanted, members, state.queues)
    assert [(r.kind, r.queue and r.queue.name) for r in again] == [
        (Operation.QUEUE_CREATE, failed),
        (Operation.QUEUE_ADD, failed),
    ]
    sent = len(api.sent)
    report = apply_plan(Plan((), tuple(again)), api, files, state, Provenance())
    assert report.complete and sorted(state.queues) == ["other", "triage"]
    kinds = [r.kind for r in api.sent[sent:]]
    if made_anyway:  # found and taken: no second queue
        assert kinds == [Operation.QUEUE_ADD]
    else:
        assert kinds == [Operation.QUEUE_CREATE, Operation.QUEUE_ADD]
    assert len(api.queues) == 2
    assert {q["_id"] for q in api.queues} == {r.id for r in state.queues.values()}
    assert plan_queues(wanted, members, state.queues) == ([], [])


def test_an_apply_that_stopped_with_a_create_in_flight_looks_for_the_queue_next_time(
    tmp_path: Path,
) -> None:
    from orqsync.state.files import StateFile
    from orqsync.state.journal import Journal

    files = StateFile(str(tmp_path / "state.json"))
    files.write(State.new())
    state = files.load()
    create = plan_queues((queue(),), {"triage": frozenset()}, {})[1][0]
    journal = files.open_journal(state)
    assert isinstance(journal, Journal)
    from orqsync.remote.queues import intent

    journal.intend("run.0.0", intent(create))
    journal.close()  # the process died here: no answer, no success line
    recovered = files.load()
    assert recovered.queues["triage"].unconfirmed
    assert recovered.queues["triage"].display_name == "Triage"


def test_a_queue_already_deleted_in_orq_ai_is_deleted(tmp_path: Path) -> None:
    from orqsync.remote.apply import apply_plan
    from orqsync.state.files import StateFile
    from orqsync.state.model import Provenance

    class Gone:
        def send(self, request: Request) -> object:
            raise ApiError("DELETE ...: HTTP 404: not found", status=404)

    _, requests = plan_queues((), {}, {"old": record()})
    state = State("lineage", queues={"old": record()})
    report = apply_plan(
        Plan((), tuple(requests)), Gone(), StateFile(str(tmp_path / "s.json")), state, Provenance()
    )
    assert report.complete and state.queues == {}


def test_spans_an_adopted_queue_held_already_stay_there(tmp_path: Path) -> None:
    from orqsync.remote.apply import apply_plan
    from orqsync.state.files import StateFile
    from orqsync.state.model import Provenance

    before = ("t00000", "s00000")  # put in the queue by someone in orq.ai

    class Adoptable:
        def send(self, request: Request) -> object:
            assert request.queue is not None
            if request.kind == Operation.QUEUE_ADD:
                return [
                    {"trace_id": t, "span_id": s}
                    for t, s in request.queue.spans
                    if (t, s) != before
                ]
            return {}

    wanted = queue(id=QUEUE_ID)
    _, requests = plan_queues((wanted,), {"triage": spans(3)}, {})
    state = State.new()
    files = StateFile(str(tmp_path / "s.json"))
    assert apply_plan(Plan((), tuple(requests)), Adoptable(), files, state, Provenance()).complete
    held = state.queues["triage"]
    assert (held.id, held.project_id) == (QUEUE_ID, PROJECT)  # the declared project, recorded
    assert held.foreign == {before} and len(held.spans) == 2
    assert parse_state((tmp_path / "s.json").read_text(), "s").queues == state.queues
    # nothing left to add; dropped from the file, the span that was there before stays
    assert plan_queues((wanted,), {"triage": spans(3)}, state.queues) == ([], [])
    _, requests = plan_queues((wanted,), {"triage": frozenset()}, state.queues)
    (removal,) = requests
    assert removal.queue is not None and before not in removal.queue.spans
    assert len(removal.queue.spans) == 2


def test_two_files_that_claim_one_queue_of_the_state_are_refused():
    held = {
        "triage": record(),
        "other": QueueRecord("01JQ6CCCCCCCCCCCCCCCCCCCCC", "Other", "", PROJECT),
    }
    copy = queue("copy", id=QUEUE_ID, path="queues/copy.yaml", line=2)
    with pytest.raises(Exception, match="both claim the state's queue triage"):
        plan_queues((queue(), copy), {"triage": frozenset(), "copy": frozenset()}, held)
    # a rename whose new name is another queue of the state: two queues, not a guess
    renamed = queue("other", renamed_from="triage")
    with pytest.raises(Exception, match="is two queues of the state: other"):
        plan_queues((renamed,), {"other": frozenset()}, held)


def test_queue_status_counts_datapoint_items_apart_and_pages_after_the_last_item() -> None:
    from orqsync.commands.queues import QueueStatus, _read_items

    pages = [
        {
            "object": "list",
            "data": [
                {"_id": "i1", "type": "span", "trace_id": "t1", "span_id": "s1"},
                {"_id": "i2", "type": "datapoint", "datapoint_id": "d1"},
            ],
            "has_more": True,
        },
        {
            "object": "list",
            "data": [
                {
                    "_id": "i3",
                    "type": "span",
                    "trace_id": "t2",
                    "span_id": "s2",
                    "used_human_review_ids": [RATING, "01JQ9ZZZZZZZZZZZZZZZZZZZZZ"],
                }
            ],
            "has_more": False,
        },
    ]
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=pages[len(seen) - 1])

    status = QueueStatus("triage", QUEUE_ID, "Triage", declared=frozenset({("t1", "s1")}))
    _read_items(client(handler), status, {RATING: "rating"})
    assert [dict(r.url.params) for r in seen] == [
        {"limit": "200"},
        {"limit": "200", "starting_after": "i2"},  # the page's last item, a datapoint too
    ]
    assert (status.datapoints, [item.id for item in status.items]) == (1, ["i1", "i3"])
    assert status.by_definition == {"rating": 1}
    assert status.by_unknown_id == {"01JQ9ZZZZZZZZZZZZZZZZZZZZZ": 1}
    assert status.undeclared == [("t2", "s2")] and status.missing == []


def _apply(requests: list[Request], api: object, state: State, tmp_path: Path) -> object:
    from orqsync.remote.apply import apply_plan
    from orqsync.state.files import StateFile
    from orqsync.state.model import Provenance

    files = StateFile(str(tmp_path / "state.json"))
    return apply_plan(Plan((), tuple(requests)), api, files, state, Provenance(), parallelism=2)  # type: ignore[arg-type]


def _unconfirmed(tmp_path: Path, made_anyway: bool = True) -> tuple[FlakyApi, State]:
    """An apply whose only request, q1's create, met a 503 (and made the queue anyway)."""
    api = FlakyApi(fail_first_create=True, made_anyway=made_anyway)
    state = State.new()
    _, requests = plan_queues((queue("q1", display_name="Queue One"),), {"q1": frozenset()}, {})
    report = _apply(requests, api, state, tmp_path)
    assert report.done == 0  # type: ignore[attr-defined]
    return api, state


def test_a_create_that_may_have_made_its_queue_is_recorded_though_nothing_else_was_done(
    tmp_path: Path,
) -> None:
    _unconfirmed(tmp_path)
    written = parse_state((tmp_path / "state.json").read_text(), "s").queues
    assert written["q1"].unconfirmed and written["q1"].display_name == "Queue One"
    assert written["q1"].attempted  # when it was sent: the look goes by it


def test_a_rename_of_an_unconfirmed_queue_takes_the_queue_its_create_made(tmp_path: Path) -> None:
    api, state = _unconfirmed(tmp_path)
    renamed = queue("q2", display_name="Queue One", renamed_from="q1")
    _, requests = plan_queues((renamed,), {"q2": frozenset()}, state.queues)
    assert [r.kind for r in requests] == [Operation.QUEUE_CREATE]
    _apply(requests, api, state, tmp_path)
    assert len(api.queues) == 1 and list(state.queues) == ["q2"]
    assert state.queues["q2"].id == api.queues[0]["_id"]


def test_the_look_goes_by_what_the_create_sent_not_by_what_the_file_says_now(
    tmp_path: Path,
) -> None:
    api, state = _unconfirmed(tmp_path)
    changed = queue("q1", display_name="Queue One", description="said differently now")
    _, requests = plan_queues((changed,), {"q1": frozenset()}, state.queues)
    _apply(requests, api, state, tmp_path)
    assert len(api.queues) == 1  # found, not made again
    held = state.queues["q1"]
    assert held.id == api.queues[0]["_id"]
    # the file's description is still to be set: the next plan updates it
    _, rest = plan_queues((changed,), {"q1": frozenset()}, state.queues)
    assert [(r.kind, r.queue and dict(r.queue.fields)) for r in rest] == [
        (Operation.QUEUE_UPDATE, {"description": "said differently now"})
    ]


def test_a_delete_of_an_unconfirmed_queue_deletes_only_the_queue_its_create_made(
    tmp_path: Path,
) -> None:
    for made_anyway in (True, False):
        api, state = _unconfirmed(tmp_path / str(made_anyway), made_anyway)
        other = {
            "_id": "01JQ8OTHERQUEUE00000000000",
            "display_name": "Other team",
            "created": now(),
        }
        api.queues.insert(0, {**other, "description": "", "project_id": PROJECT})
        _, requests = plan_queues((), {}, state.queues)
        deleted: list[str] = []
        original = api.send

        def send(request: Request, original=original, deleted=deleted) -> object:
            if request.kind == Operation.QUEUE_DELETE:
                assert request.queue is not None
                deleted.append(request.queue.id)
                return None
            return original(request)

        api.send = send  # type: ignore[method-assign]
        report = _apply(requests, api, state, tmp_path / str(made_anyway))
        assert report.complete and state.queues == {}  # type: ignore[attr-defined]
        made = [q["_id"] for q in api.queues if q["display_name"] == "Queue One"]
        assert deleted == made  # the orphan when there is one; never the other team's


def test_a_queue_made_in_this_apply_is_never_taken_for_an_orphan(tmp_path: Path) -> None:
    api, state = _unconfirmed(tmp_path, made_anyway=False)  # q1's create made nothing
    # q1 renamed to q2 without renamed_from: q1's record goes, q2 is created (same name)
    _, requests = plan_queues(
        (queue("q2", display_name="Queue One"),), {"q2": frozenset()}, state.queues
    )
    assert sorted(r.kind.value for r in requests) == ["queue_create", "queue_delete"]
    sent_deletes = []
    original = api.send

    def send(request: Request) -> object:
        if request.kind == Operation.QUEUE_DELETE:
            sent_deletes.append(request)
        return original(request)

    api.send = send  # type: ignore[method-assign]
    _apply(requests, api, state, tmp_path)
    assert sent_deletes == []  # q1's look (before anything was sent) found nothing
    assert len(api.queues) == 1 and state.queues["q2"].id == api.queues[0]["_id"]


def test_a_queue_made_long_before_the_create_was_sent_is_not_taken(tmp_path: Path) -> None:
    api, state = _unconfirmed(tmp_path, made_anyway=False)
    old = "2020-01-01T00:00:00.000Z"  # someone's queue of the same name, made years ago
    api.queues.append(
        {
            "_id": "01JQ8OLDQUEUE0000000000000",
            "display_name": "Queue One",
            "description": "",
            "project_id": PROJECT,
            "created": old,
        }
    )
    _, requests = plan_queues(
        (queue("q1", display_name="Queue One"),), {"q1": frozenset()}, state.queues
    )
    _apply(requests, api, state, tmp_path)
    assert state.queues["q1"].id != "01JQ8OLDQUEUE0000000000000"
    assert len(api.queues) == 2


def test_an_outage_during_a_create_leaves_a_record_without_an_id(tmp_path: Path) -> None:
    from orqsync.errors import ApiHaltError

    class Down:
        def send(self, request: Request) -> object:
            raise ApiHaltError("outage", "orq.ai has failed every request for 5 minutes")

    state = State.new()
    _, requests = plan_queues((queue(),), {"triage": spans(2)}, {})
    report = _apply(requests, Down(), state, tmp_path)
    assert report.halt is not None  # type: ignore[attr-defined]
    assert parse_state((tmp_path / "state.json").read_text(), "s").queues["triage"].unconfirmed


def test_two_queues_that_may_be_the_one_a_create_made_are_not_guessed_between(
    tmp_path: Path,
) -> None:
    api, state = _unconfirmed(tmp_path)  # made "Queue One"; someone made another just after
    twin = {**api.queues[0], "_id": "01JQ8TWINQUEUE000000000000"}
    api.queues.insert(0, twin)
    _, requests = plan_queues(
        (queue("q1", display_name="Queue One"),), {"q1": spans(2)}, state.queues
    )
    sent = len(api.sent)
    report = _apply(requests, api, state, tmp_path)
    assert api.sent[sent:] == []  # nothing created, nothing added
    (failure,) = report.failures  # type: ignore[attr-defined]
    assert 'orq.ai holds 2 queues named "Queue One"' in failure.message
    assert "orqsync does not guess which" in failure.message
    assert "adopt the right one with `id: ID`" in failure.hint
    assert state.queues["q1"].unconfirmed


class Adopted:
    """An adopted queue that holds `before` already; `repeat` says every request went twice
    (its answer then lists nothing as created: the first arrival made the items)."""

    def __init__(self, before: set[tuple[str, str]], repeat: bool = False) -> None:
        self.before = before
        self.repeat = repeat
        self.sent: list[Request] = []

    def send(self, request: Request) -> object:
        self.sent.append(request)
        assert request.queue is not None
        if request.kind == Operation.QUEUE_ADD:
            if self.repeat:
                return []
            made = [s for s in request.queue.spans if s not in self.before]
            return [{"trace_id": t, "span_id": s} for t, s in made]
        return {}

    def repeated(self) -> bool:
        return self.repeat


def test_an_add_sent_twice_takes_every_span_as_orqsyncs(tmp_path: Path) -> None:
    api = Adopted(before=set(), repeat=True)
    _, requests = plan_queues((queue(id=QUEUE_ID),), {"triage": spans(3)}, {})
    state = State.new()
    assert _apply(requests, api, state, tmp_path).complete  # type: ignore[attr-defined]
    held = state.queues["triage"]
    assert (len(held.spans), held.foreign) == (3, frozenset())


def test_an_adoption_cut_short_still_keeps_what_the_queue_held_someone_elses(
    tmp_path: Path,
) -> None:
    from orqsync.remote.apply import apply_plan
    from orqsync.state.files import StateFile
    from orqsync.state.model import Provenance

    before = {("t00000", "s00000")}
    api = Adopted(before)
    wanted = queue(id=QUEUE_ID)
    _, requests = plan_queues((wanted,), {"triage": spans(3)}, {})
    state = State.new()
    files = StateFile(str(tmp_path / "s.json"))
    report = apply_plan(Plan((), tuple(requests)), api, files, state, Provenance(), max_requests=1)
    assert report.done == 1 and state.queues["triage"].adopted  # the update, not the add
    _, rest = plan_queues((wanted,), {"triage": spans(3)}, state.queues)
    assert [r.queue and r.queue.adopting for r in rest] == [True]
    apply_plan(Plan((), tuple(rest)), api, files, state, Provenance())
    assert state.queues["triage"].foreign == before


def test_the_client_says_when_a_request_went_again_after_it_may_have_arrived() -> None:
    answers = [
        httpx.Response(429, headers={"Retry-After": "0"}, json={"message": "slow down"}),
        httpx.Response(200, json=[]),
        httpx.Response(502, text="bad gateway"),
        httpx.Response(200, json=[]),
    ]
    api = client(lambda request: answers.pop(0))
    add = Request(Operation.QUEUE_ADD, "", queue=QueueRef("triage", QUEUE_ID, spans=(("t", "s"),)))
    api.send(add)
    assert not api.repeated()  # a 429 is a refusal: nothing arrived
    api.send(add)
    assert api.repeated()


def test_rules_compare_values_as_labels_compare() -> None:
    from orqsync.model import Annotation
    from orqsync.source.queues import Rule

    def span(**values: object) -> dict[str, Annotation]:
        return {key: Annotation(value, (), "a.yaml", 1) for key, value in values.items()}  # type: ignore[arg-type]

    bad = Rule(where=(("rating", ("bad",)),))
    assert bad.matches(span(rating="bad")) and not bad.matches(span(rating="good"))
    assert not bad.matches(span(defects=("spelling",)))  # no rating at all
    approved = Rule(where=(("approved", (True,)),))
    assert approved.matches(span(approved=True))
    assert not approved.matches(span(approved=1))  # true is never 1
    score = Rule(where=(("score", (1,)),))
    assert score.matches(span(score=1.0)) and not score.matches(span(score=True))
    either = Rule(where=(("defects", ("hallucination", "ambiguity")),))
    assert either.matches(span(defects=("ambiguity", "spelling")))
    assert not either.matches(span(defects=("spelling",)))
    both = Rule(where=(("rating", ("bad",)), ("defects", ("spelling",))))
    assert both.matches(span(rating="bad", defects=("spelling",)))
    assert not both.matches(span(rating="bad"))
    unrated = Rule(unlabelled="rating")
    assert unrated.matches(span(defects=("spelling",))) and not unrated.matches(span(rating="bad"))
    listed = queue(spans=(("x", "y"),), rules=(bad, unrated))
    spans_ = {("a", "1"): span(rating="bad"), ("b", "2"): span(rating="good"), ("c", "3"): span()}
    assert listed.members(spans_) == {("x", "y"), ("a", "1"), ("c", "3")}
