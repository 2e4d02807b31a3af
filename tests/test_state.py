"""The state file and its journal: atomic, deterministic, honest after a crash."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orqsync.errors import StateError
from orqsync.state.codec import parse_state, render_state
from orqsync.state.files import StateFile
from orqsync.state.model import Applied, InSync, Provenance, State, span_sum

PROV = Provenance(commit="abc", author="alice", applied_at="2026-11-23T00:00:00Z", plan_id="p1")


def sample() -> State:
    state = State(lineage="L", serial=3)
    state.spans[("t2", "s1")] = {"rating": Applied("bad", (), PROV)}
    state.spans[("t1", "s1")] = {
        "defects": Applied(("a", "b"), (("reviewerId", "alice"),), PROV),
        "score": Applied(0.5, (), PROV),
    }
    return state


def test_state_text_is_sorted_with_one_span_per_line_and_round_trips():
    text = render_state(sample())
    lines = text.splitlines()
    assert lines[:4] == ["{", '"format_version": 1,', '"lineage": "L",', '"serial": 3,']
    span_lines = [line for line in lines if line.startswith('{"trace_id"')]
    assert [json.loads(line.rstrip(","))["trace_id"] for line in span_lines] == ["t1", "t2"]
    again = parse_state(text, "state.json")
    assert render_state(again) == text
    assert again.spans[("t1", "s1")]["defects"].value == ("a", "b")
    assert again.spans[("t1", "s1")]["defects"].provenance == PROV


def test_write_is_atomic_bumps_the_serial_and_keeps_a_backup(tmp_path):
    files = StateFile(str(tmp_path / "state.json"))
    state = sample()
    files.write(state)
    assert state.serial == 4
    first = (tmp_path / "state.json").read_text()
    state.spans.pop(("t2", "s1"))
    files.write(state)
    assert (tmp_path / "state.json.backup").read_text() == first
    assert json.loads((tmp_path / "state.json").read_text())["serial"] == 5
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []


def test_a_crashed_apply_is_folded_in_by_the_next_load(tmp_path):
    files = StateFile(str(tmp_path / "state.json"))
    state = sample()
    files.write(state)  # serial 4
    journal = files.open_journal(files.load())
    journal.record(
        {
            "op": "set",
            "trace_id": "t9",
            "span_id": "s9",
            "values": {"rating": "good"},
            "metadata": {},
            "provenance": PROV.to_json(),
        }
    )
    journal.record({"op": "remove", "trace_id": "t2", "span_id": "s1", "keys": ["rating"]})
    journal.close()
    # a torn line, as left by a kill in the middle of a write
    with open(files.journal_path, "a", encoding="utf-8") as handle:
        handle.write('{"op": "set", "trace_id": "t8"')
    loaded = files.load()
    assert loaded.spans[("t9", "s9")]["rating"].value == "good"
    assert ("t2", "s1") not in loaded.spans
    assert ("t8", "s1") not in loaded.spans  # the torn request never counted as done
    assert loaded.serial == 4  # folded in memory; the file is written by the next apply


def test_a_journal_of_an_older_state_is_ignored(tmp_path):
    files = StateFile(str(tmp_path / "state.json"))
    state = sample()
    files.write(state)
    journal = files.open_journal(files.load())
    journal.record({"op": "remove", "trace_id": "t1", "span_id": "s1", "keys": ["score"]})
    journal.close()
    loaded = files.load()
    files.write(loaded)  # folds and removes the journal
    with open(files.journal_path, "w", encoding="utf-8") as handle:  # a stale leftover
        handle.write(json.dumps({"op": "begin", "lineage": "L", "serial": 4}) + "\n")
        handle.write(
            json.dumps({"op": "remove", "trace_id": "t2", "span_id": "s1", "keys": ["rating"]})
            + "\n"
        )
    assert ("t2", "s1") in files.load().spans


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"format_version": 1, "lineage": "L"', "state.json:1:"),
        ("[]", "state.json: not an orqsync state file"),
        (
            '{"format_version": 9, "lineage": "L", "serial": 1, "spans": [], "feedback": []}',
            "state.json: state format version 9 is not supported (this orqsync reads version 1)",
        ),
        (
            '{"format_version": 1, "lineage": "L", "serial": 1, "provenance": [], "spans": [{}],'
            ' "feedback": []}',
            "state.json: the state file is damaged",
        ),
    ],
)
def test_a_corrupt_or_newer_state_stops_with_a_clear_message(tmp_path, text, message):
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(StateError) as caught:
        StateFile(str(path), "state.json").load()
    assert caught.value.message.startswith(message)
    assert caught.value.hint
    assert path.read_text() == text


def test_a_corrupt_state_stops_plan_and_apply_and_is_never_overwritten(make_project):
    project = make_project(
        **{
            "annotations/a.yaml": """\
        version: 1
        spans:
          - {trace_id: t, span_id: s, annotations: {rating: good}}
        """
        }
    )
    state = project.write(".orqsync/state.json", '{"format_version": 1, "lin')
    for command in (["plan"], ["apply", "--auto-approve"], ["state", "list"]):
        result = project.run(*command)
        assert result.exit_code == 1
        assert "error: .orqsync/state.json:1:" in result.stderr
        assert "the state file is corrupt" in result.stderr
        assert "Traceback" not in result.output
    assert state.read_text() == '{"format_version": 1, "lin'


def _applied_state(tmp_path, spans: int = 3) -> tuple[StateFile, str]:
    from orqsync.state.model import Applied, Provenance, State

    state = State.new()
    for index in range(spans):
        state.spans[(f"t{index}", f"s{index}")] = {
            "rating": Applied("good", (), Provenance(commit="c", plan_id="p"))
        }
    files = StateFile(str(tmp_path / "state.json"))
    files.write(state)
    return files, (tmp_path / "state.json").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda text: text.replace("},\n{", "}\n{", 1), id="a line without comma"),
        pytest.param(
            lambda text: text.replace('\n"feedback": []', '\n"feedback": [],\n"spans": []'),
            id="a second spans key",
        ),
        pytest.param(lambda text: text.replace('"by":', '"by" :', 1), id="an edited line"),
    ],
)
def test_a_damaged_state_reads_in_pieces_as_it_reads_whole(tmp_path, damage) -> None:
    """The snapshot that plans read only some lines of must not read a damaged file another
    way than the full parser: the same State, or the same error."""
    files, text = _applied_state(tmp_path)
    (tmp_path / "state.json").write_text(damage(text), encoding="utf-8")
    try:
        whole: object = files.load()
    except StateError as error:
        whole = error.message
    try:
        pieces: object = files.snapshot().state()
    except StateError as error:
        pieces = error.message
    assert pieces == whole


def test_an_id_that_is_not_utf8_is_a_state_error_not_a_crash(tmp_path) -> None:
    files, text = _applied_state(tmp_path)
    raw = text.encode("utf-8").replace(b'"trace_id":"t1"', b'"trace_id":"t\xff1"')
    (tmp_path / "state.json").write_bytes(raw)
    with pytest.raises(StateError, match="not UTF-8"):
        files.snapshot().state()


ids = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(
    spans=st.lists(st.tuples(ids, ids), unique=True, max_size=30),
    absent=st.lists(st.tuples(ids, ids), max_size=10),
)
def test_the_lines_of_a_vouched_state_are_found_by_search_as_by_the_index(
    tmp_path_factory: pytest.TempPathFactory, spans: list, absent: list
) -> None:
    """With its in_sync record valid, a state's lines are found by binary search; it finds the
    lines the full index finds (ids with quotes, escapes and any character included), and
    nothing for a span the state does not have."""
    state = State("lineage", 1)
    for trace_id, span_id in spans:
        state.spans[(trace_id, span_id)] = {"rating": Applied("good", (), Provenance(commit="c"))}
    path = tmp_path_factory.mktemp("state") / "state.json"
    files = StateFile(str(path))
    files.write(state, InSync("context", {"a.yaml": ("hash", span_sum(spans))}))
    searched = files.snapshot()
    assert searched.in_sync() == InSync(
        "context", {"a.yaml": ("hash", span_sum(spans))}, span_sum(spans)
    )
    written = {}  # each span's line, read plainly
    for line in path.read_bytes().split(b"\n"):
        if line.startswith(b'{"trace_id":'):
            record = json.loads(line.removesuffix(b","))
            written[(record["trace_id"], record["span_id"])] = line.removesuffix(b",")
    for span in [*spans, *absent]:
        assert searched.line(span) == written.get(span, b"")
    only = [*spans, *absent]
    assert searched.state(only=only) == StateFile(str(path)).load()
    path.write_bytes(path.read_bytes().replace(b'"serial": 2', b'"serial": 3'))
    assert files.snapshot().in_sync() is None  # the text before the record changed


def test_only_a_complete_write_with_a_record_carries_it(tmp_path) -> None:
    """A write that makes no claim (anything but a complete apply) drops the record."""
    files = StateFile(str(tmp_path / "state.json"))
    state = State("lineage", 1)
    files.write(state, InSync("context", {}))
    assert files.snapshot().in_sync() == InSync("context", {}, 0)
    files.write(files.load())
    assert files.snapshot().in_sync() is None
    assert "in_sync" not in json.loads((tmp_path / "state.json").read_text(encoding="utf-8"))


values = st.one_of(
    st.text(max_size=8),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.lists(st.text(max_size=4), max_size=3).map(tuple),
)
metadata = st.dictionaries(st.text(min_size=1, max_size=4), st.text(max_size=4), max_size=2)


@settings(max_examples=150, deadline=None)
@given(
    spans=st.dictionaries(
        st.tuples(ids, ids),
        st.dictionaries(st.text(min_size=1, max_size=5), st.tuples(values, metadata), min_size=1),
        max_size=8,
    )
)
def test_each_span_line_is_canonical_json_and_reads_back(spans: dict) -> None:
    """render_state builds lines from pieces; each is exactly the canonical JSON (keys sorted,
    ids first) and the state reads back equal."""
    state = State("lineage", 1)
    for span, keys in spans.items():
        state.spans[span] = {
            key: Applied(value, tuple(sorted(meta.items())), Provenance(commit=key))
            for key, (value, meta) in keys.items()
        }
    text = render_state(state)
    assert parse_state(text, "state.json") == state
    for line in text.split("\n"):
        if line.startswith('{"trace_id":'):
            record = json.loads(line.removesuffix(","))
            canonical = (
                f'{{"trace_id":{json.dumps(record["trace_id"], ensure_ascii=False)},'
                f'"span_id":{json.dumps(record["span_id"], ensure_ascii=False)},'
                '"annotations":'
                + json.dumps(
                    record["annotations"], sort_keys=True, separators=(",", ":"), ensure_ascii=False
                )
                + "}"
            )
            assert line.removesuffix(",") == canonical


def test_a_damaged_line_under_a_record_that_vouches_for_it_names_its_line(tmp_path) -> None:
    """A record can vouch for text it was not written with only if someone wrote its hash by
    hand; binary search then meets a line orqsync did not write and says where it is."""
    path = tmp_path / "state.json"
    files = StateFile(str(path))
    state = State("lineage", 1)
    for span_id in ("s1", "s2", "s3"):
        state.spans[("t", span_id)] = {"rating": Applied("good", (), Provenance(commit="c"))}
    files.write(state, InSync("context", {}))
    text = path.read_text(encoding="utf-8")
    body, _, record = text.partition('"in_sync": {\n')
    damaged = body.replace('{"trace_id":"t","span_id":"s2"', '{"trace_id" "t","span_id":"s2"')
    forged = record.replace(
        hashlib.sha256(body.encode()).hexdigest(), hashlib.sha256(damaged.encode()).hexdigest()
    )
    path.write_text(damaged + '"in_sync": {\n' + forged, encoding="utf-8")
    snapshot = files.snapshot()
    assert snapshot.in_sync() is not None
    line = 1 + next(n for n, x in enumerate(damaged.split("\n")) if x.startswith('{"trace_id" '))
    with pytest.raises(StateError, match=rf"state\.json:{line}: the state file is damaged"):
        snapshot.line(("t", "s2"))


# A state file damaged by hand or by a merge: a span on two lines, git's conflict markers.

LABELS = """\
version: 1
spans:
  - {trace_id: t1, span_id: s1, annotations: {rating: good}}
  - {trace_id: t1, span_id: s2, annotations: {rating: bad}}
  - {trace_id: t2, span_id: s1, annotations: {rating: good}}
"""

RESTORE = "restore it from git or from state.json.backup"
RESOLVE = (
    "the state is orqsync's record of what it applied: take the version of the branch that "
    "applied last (e.g. `git checkout main -- .orqsync/state.json`), then run `orqsync plan` "
    "to see what is left to apply"
)
# Every command that reads the state refuses it; blame is asked about a span that is intact.
READERS = [
    ["plan"],
    ["apply", "--auto-approve"],
    ["state", "list"],
    ["state", "show", "t2/s1"],
    ["state", "blame", "t2/s1"],
    ["export"],
]


def _line_of(lines: list[str], prefix: str) -> int:
    """The index of the first line that starts with `prefix`."""
    return next(n for n, line in enumerate(lines) if line.startswith(prefix))


def _twice_beside(lines: list[str]) -> tuple[list[str], str]:
    """t1/s1 on a second line right after its first (another value), as a hand edit leaves it."""
    first = _line_of(lines, '{"trace_id":"t1","span_id":"s1"')
    copy = lines[first].replace('"value":"good"', '"value":"bad"')
    damaged = [*lines[: first + 1], copy, *lines[first + 1 :]]
    return damaged, f"{first + 2}: the state file is damaged: span t1/s1 is recorded twice " + (
        f"(first on line {first + 1})"
    )


def _twice_apart(lines: list[str]) -> tuple[list[str], str]:
    """t1/s1 again after t1/s2, not beside its first line: what a union merge can leave."""
    first = _line_of(lines, '{"trace_id":"t1","span_id":"s1"')
    second = _line_of(lines, '{"trace_id":"t2","span_id":"s1"')
    damaged = [*lines[:second], lines[first], *lines[second:]]
    return damaged, f"{second + 1}: the state file is damaged: span t1/s1 is recorded twice " + (
        f"(first on line {first + 1})"
    )


def _conflict(lines: list[str], prefix: str) -> tuple[list[str], str]:
    """Git's markers around the first line that starts with `prefix` and another version of
    it, as a merge of two branches that both applied leaves them."""
    at = _line_of(lines, prefix)
    theirs = lines[at].replace('"good"', '"bad"').replace('"serial": 1', '"serial": 2')
    theirs = theirs.replace('"context": "', '"context": "0')
    damaged = [
        *lines[:at],
        "<<<<<<< HEAD",
        lines[at],
        "=======",
        theirs,
        ">>>>>>> labels",
        *lines[at + 1 :],
    ]
    return damaged, f"{at + 1}: the state file has an unresolved git merge conflict"


DAMAGE = [
    pytest.param(_twice_beside, RESTORE, id="a span twice, on neighbouring lines"),
    pytest.param(_twice_apart, RESTORE, id="a span twice, apart"),
    pytest.param(
        lambda lines: _conflict(lines, '"serial": '), RESOLVE, id="a conflict in the header"
    ),
    pytest.param(
        lambda lines: _conflict(lines, '{"trace_id":"t1","span_id":"s2"'),
        RESOLVE,
        id="a conflict in the spans",
    ),
    pytest.param(
        # the text before the in_sync record is intact: its hash still vouches for it
        lambda lines: _conflict(lines, '"context": '),
        RESOLVE,
        id="a conflict in the in_sync record",
    ),
]


@pytest.mark.parametrize(("damage", "hint"), DAMAGE)
def test_a_damaged_state_is_refused_by_every_command_and_left_untouched(
    make_project, damage, hint
) -> None:
    project = make_project(**{"annotations/a.yaml": LABELS})
    assert project.run("apply", "--auto-approve").exit_code == 0
    path = project.root / ".orqsync" / "state.json"
    lines, where = damage(path.read_text(encoding="utf-8").split("\n"))
    path.write_text("\n".join(lines), encoding="utf-8")
    damaged = path.read_bytes()
    files = sorted(p.name for p in path.parent.iterdir())
    for command in READERS:
        result = project.run(*command)
        assert result.exit_code == 1, (command, result.output)
        assert result.stderr.splitlines()[-2:] == [
            f"error: .orqsync/state.json:{where}",
            f"  hint: {hint}",
        ], command
        assert result.stdout == ""
    assert path.read_bytes() == damaged
    assert sorted(p.name for p in path.parent.iterdir()) == files  # no backup, no journal


def _three_spans(tmp_path, in_sync: InSync | None = None) -> tuple[StateFile, list[str]]:
    files = StateFile(str(tmp_path / "state.json"), "state.json")
    state = State("lineage", 1)
    for span in (("t1", "s1"), ("t1", "s2"), ("t2", "s1")):
        state.spans[span] = {"rating": Applied("good", (), Provenance(commit="c"))}
    files.write(state, in_sync)
    return files, (tmp_path / "state.json").read_text(encoding="utf-8").split("\n")


READS = [
    pytest.param(lambda files: files.load(), id="load"),
    pytest.param(lambda files: files.snapshot().state(), id="snapshot"),
    pytest.param(lambda files: files.snapshot().spans(), id="snapshot spans"),
    pytest.param(lambda files: files.snapshot().line(("t2", "s1")), id="snapshot line"),
    pytest.param(lambda files: files.snapshot().state(only=[("t2", "s1")]), id="snapshot only"),
    pytest.param(lambda files: files.snapshot().state({("t1", "s1")}), id="snapshot leave out"),
    pytest.param(lambda files: files.snapshot().indexed, id="snapshot indexed"),
]


@pytest.mark.parametrize("read", READS)
@pytest.mark.parametrize(
    ("damage", "in_sync"),
    [
        pytest.param(p.values[0], record, id=p.id + (" (with in_sync)" if record else ""))
        for p in DAMAGE
        for record in (None, InSync("context", {}))
        if record or p.id != "a conflict in the in_sync record"
    ],
)
def test_every_reader_of_the_state_refuses_the_same_damage_the_same_way(
    tmp_path, read, damage, in_sync
) -> None:
    """The full parse, and the snapshot that plans read lines of (by its index of them, or by
    binary search while the in_sync record vouches for the text before it)."""
    files, lines = _three_spans(tmp_path, in_sync)
    damaged, where = damage(lines)
    (tmp_path / "state.json").write_text("\n".join(damaged), encoding="utf-8")
    with pytest.raises(StateError) as caught:
        read(files)
    assert caught.value.message == f"state.json:{where}"


def test_a_span_twice_in_a_state_laid_out_otherwise_is_refused_where_it_can_be_found() -> None:
    state = State("lineage", 1)
    state.spans[("t", "s")] = {"rating": Applied("good", (), Provenance(commit="c"))}
    data = json.loads(render_state(state))
    data["spans"].append({"annotations": {}, "trace_id": "t", "span_id": "s"})
    with pytest.raises(StateError) as caught:  # ids last: no line says where a record starts
        parse_state(json.dumps(data, indent=1), "state.json")
    assert (
        caught.value.message == "state.json: the state file is damaged: span t/s is recorded twice"
    )
    data["spans"][1] = {"trace_id": "t", "span_id": "s", "annotations": {}}
    text = json.dumps(data, indent=1, ensure_ascii=True)
    first, second = (
        n + 1 for n, line in enumerate(text.split("\n")) if line.strip() == '"trace_id": "t",'
    )
    with pytest.raises(StateError) as caught:  # each record over several lines, ids first
        parse_state(text, "state.json")
    assert caught.value.message == (
        f"state.json:{second - 1}: the state file is damaged: span t/s is recorded twice "
        f"(first on line {first - 1})"
    )


def test_a_span_asked_for_twice_is_read_once(tmp_path) -> None:
    """Not damage: a plan may name a span twice when it asks the state for some."""
    files, _ = _three_spans(tmp_path, InSync("context", {}))
    snapshot = files.snapshot()
    assert snapshot.in_sync() is not None  # the lines are found by binary search
    state = snapshot.state(only=[("t1", "s1"), ("t1", "s1"), ("t9", "s9")])
    assert list(state.spans) == [("t1", "s1")]


def test_blame_reads_a_revision_with_its_span_twice_as_damaged_with_the_files_lines() -> None:
    """`read_span` parses the span's lines apart from the rest; the lines of the error are
    still the file's own."""
    from orqsync.state.snapshot import read_span

    state = State("lineage", 1)
    for span in (("t1", "s1"), ("t1", "s2"), ("t2", "s1")):
        state.spans[span] = {"rating": Applied("good", (), Provenance(commit="c"))}
    lines = render_state(state).split("\n")
    damaged, where = _twice_apart(lines)
    with pytest.raises(StateError) as caught:
        read_span("\n".join(damaged), ("t1", "s1"), "state.json")
    assert caught.value.message == f"state.json:{where}"
    conflicted, where = _conflict(lines, '{"trace_id":"t1","span_id":"s1"')
    with pytest.raises(StateError) as caught:
        read_span("\n".join(conflicted), ("t1", "s1"), "state.json")
    assert caught.value.message == f"state.json:{where}"


def test_a_merge_of_two_branches_that_both_applied_is_refused_until_resolved(
    make_project, monkeypatch
) -> None:
    """Two branches each applied a change and committed the state; their merge leaves git's
    markers in it. Every command stops at the first marker; taking the state of the branch
    that applied last, as the hint says, leaves a plan of the other branch's change."""
    from gitrepo import apply_and_commit, commit, git, init, isolate

    isolate(monkeypatch)
    project = make_project(**{"annotations/a.yaml": LABELS})
    init(project.root)
    commit(project.root, "labels")
    apply_and_commit(project)
    git(project.root, "switch", "-q", "-c", "relabel")
    project.write(
        "annotations/a.yaml",
        LABELS.replace("s1, annotations: {rating: good}", "s1, annotations: {rating: bad}", 1),
    )
    commit(project.root, "t1/s1 is bad")
    apply_and_commit(project)
    git(project.root, "switch", "-q", "main")
    project.write(
        "annotations/a.yaml",
        LABELS.replace(
            "t2, span_id: s1, annotations: {rating: good}",
            "t2, span_id: s1, annotations: {rating: bad}",
        ),
    )
    commit(project.root, "t2/s1 is bad")
    apply_and_commit(project)
    with pytest.raises(subprocess.CalledProcessError):
        git(project.root, "merge", "-q", "relabel")
    path = project.root / ".orqsync" / "state.json"
    text = path.read_text(encoding="utf-8")
    marker = 1 + _line_of(text.split("\n"), "<<<<<<< ")
    for command in READERS:
        result = project.run(*command)
        assert result.exit_code == 1, (command, result.output)
        assert result.stderr.splitlines()[-2:] == [
            f"error: .orqsync/state.json:{marker}: the state file has an unresolved git merge "
            "conflict",
            f"  hint: {RESOLVE}",
        ], command
    assert path.read_text(encoding="utf-8") == text
    path.write_text(git(project.root, "show", "main:.orqsync/state.json") + "\n", encoding="utf-8")
    result = project.run("plan")
    assert result.exit_code == 0, result.output
    assert '~ rating: "good" -> "bad"' in result.stdout  # relabel's t1/s1, applied again
    assert "Plan: 0 to add, 1 to change, 0 to remove; 1 request." in result.stdout


def test_the_layout_marks_are_where_render_state_writes_them() -> None:
    """snapshot.py finds span lines by codec's marks; a change to render_state that moved
    them would silently send every plan to the whole parse."""
    from orqsync.state import codec

    record = Applied("good", (), Provenance(commit="c"))
    full = State("lineage", 3, {("t", "s"): {"rating": record}}, {})
    text = render_state(full, InSync("context", {"a.yaml": ("hash", span_sum(full.spans))}))
    assert text.startswith(codec.HEAD)
    start = text.index(codec.SPANS_OPEN) + len(codec.SPANS_OPEN)
    end = text.index(codec.SPANS_CLOSE)
    assert text[start:end].startswith('{"trace_id":"t","span_id":"s",')
    assert "\n" not in text[start:end]
    assert text.index(codec.IN_SYNC_OPEN) > end
    assert codec.NO_SPANS in render_state(State("lineage", 0, {}, {}))


def test_an_in_sync_record_reads_back_as_written() -> None:
    record = InSync("context", {"b.yaml": ("h2", 7), "a.yaml": ("h1", 2**127)}, 5)
    data = {"context": record.context, "files": record.files_json(), "spans": "5"}
    assert list(data["files"]) == ["a.yaml", "b.yaml"]
    assert InSync.from_json(json.loads(json.dumps(data))) == record
    del data["spans"]
    assert InSync.from_json(data).spans is None
    with pytest.raises(KeyError):
        InSync.from_json({"files": {}})


def test_the_record_of_removals_and_reassertions_survives_the_state_file() -> None:
    from orqsync.state.snapshot import StateSnapshot

    record = Applied("good", (), Provenance(commit="c"))
    state = State("lineage", 3, {("t", "a"): {"rating": record}}, {})
    state.remove_keys(("t", "a"), ["defects"])
    state.remove_keys(("t", "b"), ["rating"])  # a span with nothing left but its removals
    state.asserted[("t", "a")] = "2026-12-01T00:00:00Z"
    assert state.removed == {("t", "a"): ("defects",), ("t", "b"): ("rating",)}
    text = render_state(state)
    again = parse_state(text, "state.json")
    assert again == state
    assert ("t", "b") not in again.spans
    raw = text.encode()
    snapshot = StateSnapshot(raw, hashlib.sha256(raw).hexdigest(), "state.json")
    assert snapshot.state() == state  # the fast reader of lines agrees


def test_a_key_set_again_leaves_the_removals_and_forgetting_a_span_drops_its_record() -> None:
    state = State("lineage", 1)
    state.remove_keys(("t", "a"), ["rating", "defects"])
    state.set_keys(("t", "a"), [("rating", "bad")], (), Provenance())
    assert state.removed == {("t", "a"): ("defects",)}
    state.asserted[("t", "a")] = "2026-12-01T00:00:00Z"
    state.forget(("t", "a"), ["rating"])
    assert state.removed and state.asserted  # some keys forgotten: the record stays
    state.forget(("t", "a"))
    assert state.removed == {} and state.asserted == {} and state.spans == {}


def test_a_state_without_removals_or_reassertions_is_written_as_before() -> None:
    record = Applied("good", (), Provenance(commit="c"))
    text = render_state(State("lineage", 3, {("t", "a"): {"rating": record}}, {}))
    assert '"removed"' not in text and '"asserted"' not in text


@pytest.mark.parametrize("field", ['"removed":"rating"', '"asserted":null', '"removed":[1]'])
def test_a_damaged_record_of_removals_or_reassertion_is_refused(field: str) -> None:
    record = Applied("good", (), Provenance(commit="c"))
    text = render_state(State("lineage", 3, {("t", "a"): {"rating": record}}, {}))
    damaged = text.replace('"annotations":{', field + ',"annotations":{', 1)
    with pytest.raises(StateError, match="the state file is damaged"):
        parse_state(damaged, "state.json")
