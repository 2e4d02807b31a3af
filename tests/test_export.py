"""`orqsync export`: the applied labels as a deterministic dataset tied to a commit."""

from __future__ import annotations

import csv
import hashlib
import io
import json

import pytest
from gitrepo import ALICE, BOB, apply_and_commit, commit, init, isolate

from orqsync.audit.export import render_csv
from orqsync.state.model import Applied, Provenance

A = """\
version: 1
metadata: {reviewerId: alice}
spans:
  - trace_id: t2
    span_id: s1
    annotations:
      rating: good
      defects: [spelling, grammatical]
      confidence_score: 0.5
      approved: true
  - trace_id: t1
    span_id: s2
    annotations:
      rating: bad
      correction: "Say it shorter, #2: \\"no\\" fluff"
      confidence_score: 1
      approved: false
  - trace_id: t1
    span_id: s1
    annotations:
      defects: [hallucination]
"""


def manifest_and_rows(data: bytes) -> tuple[dict, list[dict]]:
    first, _, rest = data.partition(b"\n")
    manifest = json.loads(first)["manifest"]
    assert manifest["content_sha256"] == hashlib.sha256(rest).hexdigest()
    return manifest, [json.loads(line) for line in rest.decode("utf-8").splitlines()]


@pytest.fixture
def repo(make_project, monkeypatch):
    isolate(monkeypatch)
    project = make_project(**{"annotations/a.yaml": A})
    init(project.root)
    project.labels = commit(project.root, "labels", ALICE)
    project.state1 = apply_and_commit(project)
    return project


def test_jsonl_export_is_sorted_hashed_and_names_the_commit(repo):
    result = repo.run("export")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    manifest, rows = manifest_and_rows(result.stdout.encode("utf-8"))
    state = json.loads((repo.root / ".orqsync" / "state.json").read_text())
    assert {k: v for k, v in manifest.items() if k != "content_sha256"} == {
        "format": "orqsync-export",
        "version": 1,
        "commit": repo.state1,
        "dirty": False,
        "state_lineage": state["lineage"],
        "state_serial": 1,
        "rows": 3,
        "filters": {"keys": [], "where": []},
    }
    assert [(r["trace_id"], r["span_id"]) for r in rows] == [
        ("t1", "s1"),
        ("t1", "s2"),
        ("t2", "s1"),
    ]
    assert rows[2]["annotations"] == {
        "approved": True,
        "confidence_score": 0.5,
        "defects": ["grammatical", "spelling"],
        "rating": "good",
    }
    assert rows[1]["annotations"]["correction"] == 'Say it shorter, #2: "no" fluff'
    assert rows[1]["annotations"]["confidence_score"] == 1
    assert rows[0]["metadata"] == {"defects": {"reviewerId": "alice", "source": "orqsync"}}
    provenance = rows[0]["provenance"]["defects"]
    assert provenance["commit"] == repo.labels
    assert provenance["author"] == "Alice <alice@example.com>"
    assert set(provenance) == {"commit", "author", "applied_at", "plan_id"}
    line = result.stdout.splitlines()[1]
    assert line == json.dumps(rows[0], sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def test_the_same_commit_exports_the_same_bytes_now_and_later_with_at(repo):
    again = repo.run("export").stdout.encode("utf-8")
    assert repo.run("export").stdout.encode("utf-8") == again
    csv_first = repo.run("export", "--format", "csv").stdout.encode("utf-8")
    repo.write("annotations/a.yaml", A.replace("rating: good", "rating: bad"))
    commit(repo.root, "Bob: t2/s1 is bad", BOB)
    later = apply_and_commit(repo)
    now = repo.run("export").stdout.encode("utf-8")
    assert now != again
    assert manifest_and_rows(now)[0]["commit"] == later
    at = repo.run("export", "--at", repo.state1)
    assert at.stdout.encode("utf-8") == again
    assert repo.run("export", "--at", "HEAD~2").stdout.encode("utf-8") == again
    # Bob's commit holds the same state: same rows and hash, but the manifest names that commit
    bobs, rows = manifest_and_rows(repo.run("export", "--at", "HEAD~1").stdout.encode("utf-8"))
    first, first_rows = manifest_and_rows(again)
    assert rows == first_rows
    assert bobs["content_sha256"] == first["content_sha256"]
    assert bobs["commit"] != first["commit"]
    at_csv = repo.run("export", "--format", "csv", "--at", repo.state1[:10])
    assert at_csv.stdout.encode("utf-8") == csv_first


def test_export_out_writes_exactly_what_stdout_shows(repo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = repo.run("export", "--out", "data.jsonl")
    assert result.exit_code == 0
    assert result.stderr == f"Wrote 3 rows to data.jsonl (labels as of commit {repo.state1[:7]}).\n"
    assert (tmp_path / "data.jsonl").read_bytes() == repo.run("export").stdout.encode("utf-8")


def test_a_state_with_uncommitted_changes_is_marked_dirty_with_no_commit(repo):
    repo.write("annotations/a.yaml", A.replace("rating: good", "rating: bad"))
    assert repo.run("apply", "--auto-approve").exit_code == 0
    result = repo.run("export")
    manifest, rows = manifest_and_rows(result.stdout.encode("utf-8"))
    assert (manifest["commit"], manifest["dirty"], manifest["state_serial"]) == ("", True, 2)
    assert rows[2]["annotations"]["rating"] == "bad"
    assert result.stderr.startswith("warning: the state differs from the last commit")


def test_uncommitted_provenance_is_exported_in_jsonl_when_set_and_always_as_a_csv_column(repo):
    repo.write("annotations/a.yaml", A.replace("rating: good", "rating: bad"))
    assert repo.run("apply", "--auto-approve").exit_code == 0
    state = json.loads((repo.root / ".orqsync" / "state.json").read_text())
    [uncommitted] = {p["uncommitted"] for p in state["provenance"] if p.get("uncommitted")}
    assert len(uncommitted) == 64
    _, rows = manifest_and_rows(repo.run("export").stdout.encode("utf-8"))
    provenance = rows[2]["provenance"]
    assert provenance["rating"]["uncommitted"] == uncommitted  # applied from the changed file
    assert "uncommitted" not in provenance["approved"]  # applied before, from a commit
    assert provenance["approved"]["commit"] == repo.labels
    data = repo.run("export", "--format", "csv").stdout
    table = list(csv.DictReader(io.StringIO(data.partition("\n")[2])))
    assert (table[2]["rating.uncommitted"], table[2]["approved.uncommitted"]) == (uncommitted, "")
    assert table[0]["rating.uncommitted"] == ""  # t1/s1 has no rating: every cell empty


def test_an_empty_text_with_nothing_else_to_show_is_marked_by_its_metadata_cell():
    empty = Applied("", (), Provenance())
    text = render_csv([(("t1", "s1"), {"correction": empty}), (("t1", "s2"), {})])
    assert text.splitlines()[1:] == ["t1,s1,,,,,,,,{}", "t1,s2,,,,,,,,"]


def test_outside_git_the_export_is_dirty(make_project, monkeypatch):
    isolate(monkeypatch)
    project = make_project(**{"annotations/a.yaml": A})
    assert project.run("apply", "--auto-approve").exit_code == 0
    manifest, rows = manifest_and_rows(project.run("export").stdout.encode("utf-8"))
    assert (manifest["commit"], manifest["dirty"], len(rows)) == ("", True, 3)
    missing = project.run("export", "--at", "HEAD")
    assert missing.exit_code == 1
    assert "is not in a git repository" in missing.stderr


def test_key_keeps_only_those_labels_and_only_spans_having_one(repo):
    manifest, rows = manifest_and_rows(
        repo.run("export", "--key", "rating", "--key", "correction").stdout.encode()
    )
    assert [(r["span_id"], r["annotations"]) for r in rows] == [
        ("s2", {"correction": 'Say it shorter, #2: "no" fluff', "rating": "bad"}),
        ("s1", {"rating": "good"}),
    ]
    assert set(rows[0]["provenance"]) == {"correction", "rating"}
    assert manifest["filters"] == {"keys": ["correction", "rating"], "where": []}


@pytest.mark.parametrize(
    ("where", "spans"),
    [
        (["rating=good"], [("t2", "s1")]),
        (["defects=spelling"], [("t2", "s1")]),
        (["defects=hallucination"], [("t1", "s1")]),
        (["confidence_score=1.0"], [("t1", "s2")]),
        (["confidence_score=0.50"], [("t2", "s1")]),
        (["approved=false"], [("t1", "s2")]),
        (["approved=true", "rating=good"], [("t2", "s1")]),
        (["approved=true", "rating=bad"], []),
        (['correction=Say it shorter, #2: "no" fluff'], [("t1", "s2")]),
    ],
)
def test_where_filters_by_value_contains_numbers_and_booleans(repo, where, spans):
    args = [arg for condition in where for arg in ("--where", condition)]
    manifest, rows = manifest_and_rows(repo.run("export", *args).stdout.encode())
    assert [(r["trace_id"], r["span_id"]) for r in rows] == spans
    assert manifest["filters"]["where"] == sorted(where)
    assert manifest["rows"] == len(spans)


def test_where_with_a_key_then_keeps_the_other_keys_out(repo):
    _, rows = manifest_and_rows(
        repo.run("export", "--where", "rating=bad", "--key", "approved").stdout.encode()
    )
    assert [r["annotations"] for r in rows] == [{"approved": False}]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--where", "rating=goood"],
            'error: --where rating=goood: "goood" is not an option of rating\n'
            "  hint: options: good, bad\n",
        ),
        (["--where", "rating"], "error: --where rating: expected KEY=VALUE\n"),
        (
            ["--where", "confidence_score=high"],
            "error: --where confidence_score=high: confidence_score is a range\n"
            "  hint: give a number\n",
        ),
        (
            ["--key", "ratng"],
            "error: no key ratng in the definitions or the state\n"
            "  hint: known keys: approved, confidence_score, correction, defects, rating\n",
        ),
        (["--at", "nope"], "error: unknown revision 'nope' in the git repository at "),
    ],
)
def test_filters_that_cannot_match_are_errors_not_empty_datasets(repo, args, message):
    result = repo.run("export", *args)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(message)


def test_at_a_commit_before_the_first_apply_says_the_state_did_not_exist(repo):
    result = repo.run("export", "--at", repo.labels)
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: --at {repo.labels}: .orqsync/state.json does not exist in commit "
        f"{repo.labels[:7]}\n"
        "  hint: pick a commit after the state was first committed "
        "(git log -- .orqsync/state.json)\n"
    )


def test_csv_has_a_manifest_comment_a_header_and_quoted_cells(repo):
    data = repo.run("export", "--format", "csv").stdout.encode("utf-8")
    first, _, rest = data.partition(b"\n")
    assert first.startswith(b'# {"manifest":{')
    manifest = json.loads(first[2:])["manifest"]
    assert manifest["content_sha256"] == hashlib.sha256(rest).hexdigest()
    table = list(csv.DictReader(io.StringIO(rest.decode("utf-8"))))
    header = rest.decode().splitlines()[0].split(",")
    assert header[:7] == [
        "trace_id",
        "span_id",
        "approved",
        "confidence_score",
        "correction",
        "defects",
        "rating",
    ]
    assert header[7:14] == [
        "approved.commit",
        "approved.author",
        "approved.applied_at",
        "approved.plan_id",
        "approved.run_url",
        "approved.uncommitted",
        "approved.metadata",
    ]
    assert [(row["trace_id"], row["span_id"]) for row in table] == [
        ("t1", "s1"),
        ("t1", "s2"),
        ("t2", "s1"),
    ]
    assert table[0]["rating"] == "" and table[0]["defects"] == '["hallucination"]'
    assert table[1]["correction"] == 'Say it shorter, #2: "no" fluff'
    assert table[1]["confidence_score"] == "1" and table[1]["approved"] == "false"
    assert table[2]["defects"] == '["grammatical","spelling"]'
    assert table[2]["confidence_score"] == "0.5"
    assert table[2]["rating.commit"] == repo.labels
    assert json.loads(table[2]["rating.metadata"]) == {"reviewerId": "alice", "source": "orqsync"}
    assert '"Say it shorter, #2: ""no"" fluff"' in rest.decode()  # `#` cells are quoted


def test_csv_export_with_no_rows_is_a_header_only(repo):
    data = repo.run("export", "--format", "csv", "--where", "rating=bad", "--where", "rating=good")
    first, _, rest = data.stdout.partition("\n")
    assert rest == "trace_id,span_id\n"
    assert json.loads(first[2:])["manifest"]["rows"] == 0
