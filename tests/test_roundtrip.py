"""`orqsync export` then `orqsync import` gives back the same state (issue 14, item 7).

A state of labels of every definition type, with metadata that varies per span and, where a
span is declared in several files, per key, is applied to an embedded-emulator project,
exported in each format and imported into a fresh project: the two states hold the same value
and the same metadata for every (trace_id, span_id, key), and the YAML file the import wrote
plans no change.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from conftest import PROJECT, Project
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orqsync.commands.init import DEFINITIONS
from orqsync.review.render import NO_CHANGES
from orqsync.source.values import canonical_number
from orqsync.state.files import StateFile

Label = tuple[str, str, str]
Snapshot = dict[Label, tuple[tuple[str, object], tuple[tuple[str, str], ...]]]

TRACES = ("t1", "t2", "t3")
SPAN_NAMES = ("s1", "s2")
SPANS = tuple((trace, span) for trace in TRACES for span in SPAN_NAMES)
PROJECT_METADATA = {"source": "orqsync"}  # conftest's orqsync.yaml gives every label this
FORMATS = ("jsonl", "csv")

# Printable text of any script, and the awkward cases of CSV and YAML: the empty text (an
# empty CSV cell), quotes, commas, `#`, CRLF inside a cell, edge spaces, a tab and a NEL.
printable = st.text(st.characters(categories=("L", "N", "P", "S", "Zs")), max_size=8)
texts = st.sampled_from(("", " padded ", 'a, "b" #c', "line\r\nbreak", "tab\tnel\x85")) | printable
VALUES = {
    "rating": st.sampled_from(("good", "bad")),
    "defects": st.sets(
        st.sampled_from(("grammatical", "spelling", "hallucination", "ambiguity")), min_size=1
    ).map(lambda chosen: tuple(sorted(chosen))),
    "confidence_score": st.sampled_from((0, 1, 0.5, 1e-05))
    | st.floats(min_value=0, max_value=1).map(canonical_number),
    "correction": texts,
    "approved": st.booleans(),
}
# What a file or span adds to the project's metadata: names of the schema, values that YAML
# would read as something else unless quoted, and drawn text.
OVERRIDES = st.sampled_from(
    (
        {},
        {"reviewerId": "alice"},
        {"reviewerId": "bob", "identityId": "user-1"},
        {"source": "labelling tool"},
        {"identityId": "42", "reviewerId": "true"},
        {"reviewerId": ""},
    )
) | st.fixed_dictionaries({"reviewerId": printable})


@st.composite
def labelled_states(draw: st.DrawFn) -> dict[Label, tuple[object, dict[str, str]]]:
    """Labels (value and the metadata added over the project's) of a few spans: mostly one
    metadata a span (as one file or span declares it), sometimes another for one key."""
    labels = {}
    for trace_id, span_id in draw(st.sets(st.sampled_from(SPANS), min_size=1, max_size=4)):
        shared = draw(OVERRIDES)
        for key in sorted(draw(st.sets(st.sampled_from(sorted(VALUES)), min_size=1))):
            override = draw(OVERRIDES) if draw(st.integers(0, 3)) == 0 else shared
            labels[(trace_id, span_id, key)] = (draw(VALUES[key]), override)
    return labels


def yaml_text(value: object) -> str:
    """JSON, which YAML reads (a double-quoted scalar for text), with the line breaks YAML
    would fold in a scalar escaped."""
    text = json.dumps(list(value) if isinstance(value, tuple) else value, ensure_ascii=False)
    return text.translate({0x85: "\\x85", 0x2028: "\\u2028", 0x2029: "\\u2029"})


def flow(metadata: dict[str, str]) -> str:
    return "{" + ", ".join(f"{k}: {yaml_text(v)}" for k, v in metadata.items()) + "}"


def annotation_files(
    labels: dict[Label, tuple[object, dict[str, str]]], at_file_level: list[bool]
) -> dict[str, str]:
    """One file per distinct metadata, said once for the file or on each span of it: a span
    whose keys carry different metadata is declared in several files."""
    groups: dict[str, dict[tuple[str, str], dict[str, object]]] = {}
    for (trace_id, span_id, key), (value, override) in sorted(labels.items()):
        group = groups.setdefault(json.dumps(override, sort_keys=True), {})
        group.setdefault((trace_id, span_id), {})[key] = value
    files = {}
    for index, (override_text, spans) in enumerate(sorted(groups.items())):
        override = json.loads(override_text)
        file_level = at_file_level[index % len(at_file_level)]
        lines = ["version: 1"]
        if file_level and override:
            lines.append(f"metadata: {flow(override)}")
        lines.append("spans:")
        for (trace_id, span_id), keys in sorted(spans.items()):
            lines += [f"  - trace_id: {trace_id}", f"    span_id: {span_id}"]
            if override and not file_level:
                lines.append(f"    metadata: {flow(override)}")
            lines.append("    annotations:")
            lines += [f"      {key}: {yaml_text(value)}" for key, value in sorted(keys.items())]
        files[f"annotations/g{index}.yaml"] = "\n".join(lines) + "\n"
    return files


def new_project(root: Path, files: dict[str, str]) -> Project:
    project = Project(root)
    project.write("orqsync.yaml", PROJECT.format(base_url="embedded"))
    project.write("definitions.yaml", DEFINITIONS)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return project


def typed(value: object) -> tuple[str, object]:
    """A value with its type, so that True never equals 1 and 1 never equals 1.0."""
    return (type(value).__name__, value)


def snapshot(project: Project) -> Snapshot:
    state = StateFile(str(project.root / ".orqsync" / "state.json"), "state.json").load()
    return {
        (trace_id, span_id, key): (typed(applied.value), applied.metadata)
        for (trace_id, span_id), keys in state.spans.items()
        for key, applied in keys.items()
    }


@settings(
    max_examples=15,  # each example runs the CLI seven times: apply, export, import, plan
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(labels=labelled_states(), at_file_level=st.lists(st.booleans(), min_size=1, max_size=3))
def test_export_then_import_gives_back_the_same_values_and_metadata(
    labels: dict[Label, tuple[object, dict[str, str]]], at_file_level: list[bool]
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        source = new_project(root / "source", annotation_files(labels, at_file_level))
        applied = source.run("apply", "--auto-approve")
        assert applied.exit_code == 0, applied.output
        before = snapshot(source)
        assert before == {
            label: (typed(value), tuple(sorted({**PROJECT_METADATA, **override}.items())))
            for label, (value, override) in labels.items()
        }
        for fmt in FORMATS:
            data = root / f"labels.{fmt}"
            exported = source.run("export", "--format", fmt, "--out", str(data))
            assert exported.exit_code == 0, exported.output
            fresh = new_project(root / f"fresh-{fmt}", {})
            imported = fresh.run("import", str(data))
            assert imported.exit_code == 0, imported.output
            assert snapshot(fresh) == before, fmt
            plan = fresh.run("plan", "--detailed-exitcode")
            assert plan.exit_code == 0, plan.output
            assert plan.stdout == NO_CHANGES + "\n", plan.output
