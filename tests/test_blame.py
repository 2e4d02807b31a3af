"""`orqsync state blame`: each label's versions through the state's git history."""

from __future__ import annotations

import json

import pytest
from gitrepo import ALICE, BOB, BOT, apply_and_commit, commit, init, isolate

from orqsync.state.codec import parse_state, render_state
from orqsync.state.model import Applied, Provenance, State
from orqsync.state.snapshot import read_span

A = """\
version: 1
metadata: {reviewerId: alice}
spans:
  - trace_id: t1
    span_id: s1
    annotations:
      rating: good
      correction: Say it shorter.
  - trace_id: t1
    span_id: s2
    annotations: {rating: bad}
"""


@pytest.fixture
def repo(make_project, monkeypatch):
    """Alice's labels applied and the state committed; then Bob's change, applied, committed."""
    isolate(monkeypatch)
    project = make_project(**{"annotations/a.yaml": A})
    init(project.root)
    project.alice = commit(project.root, "Alice labels t1", ALICE)
    project.state1 = apply_and_commit(project)
    project.write("annotations/a.yaml", A.replace("rating: good", "rating: bad"))
    project.bob = commit(project.root, "Bob: t1/s1 is bad", BOB)
    project.state2 = apply_and_commit(project)
    history = (project.root / ".orqsync" / "state.history.jsonl").read_text().splitlines()
    project.plans = [json.loads(line)["plan_id"] for line in history]
    project.times = [json.loads(line)["started"] for line in history]
    return project


def test_blame_shows_both_versions_with_their_commits_and_authors(repo):
    result = repo.run("state", "blame", "t1/s1", "rating")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        "t1/s1",
        f'rating = "bad"  by Bob <bob@example.com> in commit {repo.bob[:7]} '
        f"(apply plan {repo.plans[1]}, {repo.times[1]}), "
        f'was "good" (by Alice <alice@example.com>, commit {repo.alice[:7]})',
        f'    {repo.times[1]}  "bad"  Bob <bob@example.com>  commit {repo.bob[:7]}  '
        f"apply plan {repo.plans[1]}  metadata {{reviewerId: alice, source: orqsync}}  "
        f"(state commit {repo.state2[:7]}, serial 2)",
        f'    {repo.times[0]}  "good"  Alice <alice@example.com>  commit {repo.alice[:7]}  '
        f"apply plan {repo.plans[0]}  metadata {{reviewerId: alice, source: orqsync}}  "
        f"(state commit {repo.state1[:7]}, serial 1)",
    ]


def test_blame_of_a_span_lists_every_key_and_unchanged_keys_once(repo):
    result = repo.run("state", "blame", "t1/s1", "--format", "json")
    data = json.loads(result.stdout)
    assert sorted(data["keys"]) == ["correction", "rating"]
    [correction] = data["keys"]["correction"]
    assert correction["value"] == "Say it shorter."
    assert correction["provenance"]["commit"] == repo.alice
    assert correction["state_commit"]["sha"] == repo.state1
    assert correction["state_commit"]["author"] == "orqsync-bot <bot@example.com>"
    bad, good = data["keys"]["rating"]
    assert (bad["value"], bad["provenance"]["commit"], bad["provenance"]["author"]) == (
        "bad",
        repo.bob,
        "Bob <bob@example.com>",
    )
    assert (good["value"], good["provenance"]["plan_id"]) == ("good", repo.plans[0])
    assert good["metadata"] == {"reviewerId": "alice", "source": "orqsync"}


def test_a_removed_label_names_the_state_commit_and_the_apply_that_removed_it(repo):
    repo.write("annotations/a.yaml", A.replace("      correction: Say it shorter.\n", ""))
    removal = commit(repo.root, "drop the correction", ALICE)
    state3 = apply_and_commit(repo)
    plan3 = json.loads(
        (repo.root / ".orqsync" / "state.history.jsonl").read_text().splitlines()[-1]
    )["plan_id"]
    lines = repo.run("state", "blame", "t1/s1", "correction").stdout.splitlines()
    assert lines[1].startswith(f"correction: removed in state commit {state3[:7]} (")
    assert lines[1].endswith(
        f'orqsync-bot <bot@example.com>), was "Say it shorter." '
        f"(by Alice <alice@example.com>, commit {repo.alice[:7]})"
    )
    assert lines[2].endswith(
        f"  removed  (state commit {state3[:7]}, serial 3)  "
        f"by apply plan {plan3} (Alice <alice@example.com>, commit {removal[:7]})"
    )
    assert len(lines) == 4


def test_an_uncommitted_apply_shows_as_the_working_copy(repo):
    changed = A.replace("rating: good", "rating: bad").replace("{rating: bad}", "{rating: good}")
    repo.write("annotations/a.yaml", changed)
    commit(repo.root, "Bob: t1/s2 is good", BOB)
    assert repo.run("apply", "--auto-approve").exit_code == 0  # the state is not committed
    lines = repo.run("state", "blame", "t1/s2").stdout.splitlines()
    assert lines[1].startswith('rating = "good"  by Bob <bob@example.com> in commit ')
    assert lines[2].endswith("(working copy, not committed, serial 3)")
    assert lines[3].endswith(f"(state commit {repo.state1[:7]}, serial 1)")


def test_outside_git_blame_shows_the_current_record_and_says_why(make_project, monkeypatch):
    isolate(monkeypatch)
    project = make_project(**{"annotations/a.yaml": A})
    assert project.run("apply", "--auto-approve", "--author", "Carol").exit_code == 0
    result = project.run("state", "blame", "t1/s2")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[1].startswith('rating = "bad"  by Carol in no commit (')
    assert result.stdout.splitlines()[2].endswith("(working copy, not committed, serial 1)")
    assert result.stderr == (
        f"note: {project.root} is not in a git repository: this is the current record only; "
        "the history of a label needs the state file committed to git\n"
    )


def test_blame_of_an_unknown_span_or_key_is_an_error_with_a_hint(repo):
    missing = repo.run("state", "blame", "t9/s9")
    assert missing.exit_code == 1
    assert missing.stderr == (
        "error: t9/s9 is not in the state and never was in its git history\n"
        "  hint: see `orqsync state list`\n"
    )
    key = repo.run("state", "blame", "t1/s1", "ratng")
    assert key.exit_code == 1
    assert key.stderr == (
        "error: t1/s1 has no key ratng in the state or its history\n"
        "  hint: its keys: correction, rating\n"
    )
    usage = repo.run("state", "blame", "t1")
    assert usage.exit_code == 1
    assert "'t1' is not TRACE_ID/SPAN_ID" in usage.stderr


P1 = Provenance("c1", "alice", "2026-11-23T10:00:00Z", "p1")
P2 = Provenance("c2", "bob", "2026-11-23T11:00:00Z", "p2", "https://ci/run/1")


def awkward_state() -> State:
    state = State(lineage="L", serial=7)
    state.spans[("t1", "s1")] = {"rating": Applied("good", (("span_id", "s2"),), P1)}
    state.spans[("t1", "s2")] = {
        "defects": Applied(("a", "b"), (), P2),
        "correction": Applied('say "hi", then stop', (), P1),
    }
    state.spans[("t2", "s2")] = {"score": Applied(0.5, (), P2)}
    state.spans[("tré", "ünï")] = {"approved": Applied(True, (), P2)}
    state.spans[("t3", 'a"b')] = {"rating": Applied("bad", (), P1)}
    return state


@pytest.mark.parametrize(
    "span", [("t1", "s1"), ("t1", "s2"), ("t2", "s2"), ("tré", "ünï"), ("t3", 'a"b'), ("t9", "s1")]
)
def test_the_one_span_fast_path_reads_what_the_whole_parse_reads(span):
    state = awkward_state()
    text = render_state(state)
    header, record = read_span(text, span, "state.json")
    assert record == state.spans.get(span)
    assert (header.lineage, header.serial) == ("L", 7)
    reformatted = json.dumps(json.loads(text), indent=2)  # not render_state's layout
    header, record = read_span(reformatted, span, "state.json")
    assert record == parse_state(text, "x").spans.get(span)
    assert header.serial == 7


def test_the_fast_path_reads_a_state_with_no_spans():
    state = State(lineage="L", serial=2)
    header, record = read_span(render_state(state), ("t", "s"), "state.json")
    assert record is None
    assert header.serial == 2


def test_a_commit_with_an_unreadable_state_is_left_out_with_a_note(repo):
    state = repo.root / ".orqsync" / "state.json"
    good = state.read_text()
    state.write_text("<<<<<<< HEAD\n" + good)
    broken = commit(repo.root, "a bad merge", BOT)
    state.write_text(good)
    commit(repo.root, "fix the merge", BOT)
    result = repo.run("state", "blame", "t1/s1", "rating")
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 4  # the same two versions as before
    assert result.stderr == (
        f"note: .orqsync/state.json could not be read in commit {broken[:7]}, "
        "left out of this history\n"
    )
