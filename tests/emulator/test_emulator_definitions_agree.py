"""The emulator and orqsync accept the same definitions files, and read them the same way.

Each side has its own reader (the emulator imports nothing from orqsync), so every file below
goes through both: orqsync's `load_definitions` (schema plus its own checks) and the emulator's
`load_definitions`. They must agree on accept or refuse, and on what an accepted file says.
A property test then draws files from the same pieces, valid and not.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orqsync.emulator import DefinitionsError
from orqsync.emulator import definitions as emulator_definitions
from orqsync.source import definitions as orqsync_definitions

V1 = "version: 1\ndefinitions:\n"

CORPUS: dict[str, str] = {
    # accepted
    "every type": V1 + "  rating: {type: single_select, options: [good, bad]}\n"
    "  defects: {type: multi_select, options: [grammatical, spelling]}\n"
    "  score: {type: range, min: 0, max: 1}\n"
    "  note: {type: text}\n"
    "  approved: {type: boolean}\n",
    "block style with id and description": V1 + "  rating:\n"
    "    type: single_select\n"
    "    id: 01HXYZABCDEFGHJKMNPQRSTVWX\n"
    "    description: |\n"
    "      Is the answer right?\n"
    "    options:\n"
    "      - good\n"
    "      - bad\n",
    "no definitions": "version: 1\ndefinitions: {}\n",
    "version 1.0": "version: 1.0\ndefinitions: {}\n",
    "options YAML 1.1 reads as booleans": V1
    + "  answered: {type: single_select, options: [yes, no, on, off]}\n",
    "options of every scalar kind": V1
    + "  stars: {type: single_select, options: [1, 2.5, true, '3', 0x1F, .nan, 2024-05-01]}\n",
    "min equal to max": V1 + "  score: {type: range, min: 1, max: 1}\n",
    "bounds in every number form": V1 + "  score: {type: range, min: 0x10, max: 1e3}\n"
    "  other: {type: range, min: 0o7, max: +8.}\n",
    "a tagged bound": V1 + "  score: {type: range, min: !!str 1, max: !!float 2}\n",
    "keys YAML 1.1 reads as booleans": V1 + "  no: {type: text}\n  on: {type: boolean}\n",
    "anchors and aliases": V1 + "  a: {type: single_select, options: &o [x, y]}\n"
    "  b: {type: multi_select, options: *o}\n",
    "a 255-character key": V1 + "  " + "k" * 255 + ": {type: text}\n",
    "a byte order mark": "\ufeff" + V1 + "  note: {type: text}\n",
    "a comment and an explicit document start": "# pinned\n---\n" + V1 + "  note: {type: text}\n",
    # refused
    "unknown type": V1 + "  rating: {type: stars}\n",
    "correction": V1 + "  fix: {type: correction}\n",
    "no type": V1 + "  rating: {options: [a]}\n",
    "a type that is a list": V1 + "  rating: {type: [text]}\n",
    "range min above max": V1 + "  score: {type: range, min: 5, max: 1}\n",
    "range min .nan": V1 + "  score: {type: range, min: .nan, max: 1}\n",
    "range max .inf": V1 + "  score: {type: range, min: 0, max: .inf}\n",
    "range min -.inf": V1 + "  score: {type: range, min: -.inf, max: 0}\n",
    "range max too big for a float": V1 + "  score: {type: range, min: 0, max: 1e400}\n",
    "range min quoted": V1 + "  score: {type: range, min: '0', max: 1}\n",
    "range min true": V1 + "  score: {type: range, min: true, max: 1}\n",
    "range min negative hex": V1 + "  score: {type: range, min: -0x10, max: 1}\n",
    "range min with underscores": V1 + "  score: {type: range, min: 1_000, max: 2000}\n",
    "range without max": V1 + "  score: {type: range, min: 0}\n",
    "range bounds under config": V1 + "  score: {type: range, config: {min: 0, max: 1}}\n",
    "empty option": V1 + "  rating: {type: single_select, options: [good, '']}\n",
    "blank option": V1 + "  rating: {type: single_select, options: [good, '  ']}\n",
    "null option": V1 + "  rating: {type: single_select, options: [good, ~]}\n",
    "duplicate option": V1 + "  rating: {type: multi_select, options: [good, bad, good]}\n",
    "duplicate option as text and number": V1
    + "  stars: {type: single_select, options: [1, '1']}\n",
    "missing options": V1 + "  rating: {type: single_select}\n",
    "empty options": V1 + "  rating: {type: single_select, options: []}\n",
    "options not a list": V1 + "  rating: {type: single_select, options: good}\n",
    "option objects": V1 + "  rating: {type: single_select, options: [{value: good}]}\n",
    "a list in the options": V1 + "  rating: {type: single_select, options: [[a]]}\n",
    "options on a range": V1 + "  score: {type: range, min: 0, max: 1, options: [a]}\n",
    "options on a text": V1 + "  note: {type: text, options: [a]}\n",
    "min on a boolean": V1 + "  ok: {type: boolean, min: 0}\n",
    "an unknown field": V1 + "  rating: {type: single_select, options: [a], display_name: R}\n",
    "a description that is a number": V1 + "  note: {type: text, description: 5}\n",
    "an id that is null": V1 + "  note: {type: text, id: ~}\n",
    "an id that is not a ULID": V1 + "  note: {type: text, id: X1}\n",
    "an id in lower case": V1 + "  note: {type: text, id: 01hxyzabcdefghjkmnpqrstvwx}\n",
    "an id with an I": V1 + "  note: {type: text, id: 01HXYZABCDEFGHJKMNPQRSTVWI}\n",
    "definitions as a list": V1 + "  - {key: note, type: text}\n",
    "definitions null": "version: 1\ndefinitions:\n",
    "a definition that is text": V1 + "  note: text\n",
    "no version": "definitions:\n  note: {type: text}\n",
    "version 2": "version: 2\n" + "definitions: {}\n",
    "version quoted": "version: '1'\ndefinitions: {}\n",
    "version true": "version: true\ndefinitions: {}\n",
    "no definitions key": "version: 1\n",
    "an unknown top-level field": "version: 1\nworkspace: w\ndefinitions: {}\n",
    "empty file": "",
    "only a comment": "# nothing\n",
    "a list at the top": "- version: 1\n",
    "duplicate definition": V1 + "  note: {type: text}\n  note: {type: boolean}\n",
    "duplicate field": V1 + "  note: {type: text, type: boolean}\n",
    "a quoted empty key": V1 + "  '': {type: text}\n",
    "a null key": V1 + "  ~: {type: text}\n",
    "a 256-character key": V1 + "  " + "k" * 256 + ": {type: text}\n",
    "a merge key": V1 + "  a: &a {type: text}\n  b: {<<: *a}\n",
    "a custom tag": V1 + "  note: !custom {type: text}\n",
    "a set tag": V1 + "  note: !!set {type: text}\n",
    "invalid YAML": V1 + "  rating: {type: single_select, options: [a, b]\n",
    "a tab": V1 + "\tnote: {type: text}\n",
    "two documents": "version: 1\ndefinitions: {}\n---\nversion: 1\n",
    "a control character": V1 + '  note: {type: text, description: "a\x07b"}\n',
    "nested too deeply": V1 + "  note: {type: text, description: " + "[" * 70 + "]" * 70 + "}\n",
}


def orqsync_reads(path: Path) -> dict[str, tuple[object, ...]] | None:
    """orqsync's reading of the file, None if refused."""
    found, problems = orqsync_definitions.load_definitions(str(path), path.name)
    if any(problem.severity == "error" for problem in problems):
        return None
    return {key: (d.type, d.options, d.min, d.max) for key, d in found.items()}


def emulator_reads(path: Path) -> dict[str, tuple[object, ...]] | None:
    """The emulator's reading of the file, None if refused."""
    try:
        found = emulator_definitions.load_definitions(str(path))
    except DefinitionsError:
        return None
    return {key: (d.type, d.options, d.minimum, d.maximum) for key, d in found.items()}


def test_the_corpus_holds_files_both_accept_and_files_both_refuse(tmp_path: Path):
    path = tmp_path / "definitions.yaml"
    accepted = []
    for name, text in CORPUS.items():
        path.write_text(text, encoding="utf-8")
        if orqsync_reads(path) is not None:
            accepted.append(name)
    assert 10 <= len(accepted) <= len(CORPUS) - 40


@pytest.mark.parametrize("name", list(CORPUS))
def test_orqsync_and_the_emulator_agree(name: str, tmp_path: Path):
    path = tmp_path / "definitions.yaml"
    path.write_text(CORPUS[name], encoding="utf-8")
    assert emulator_reads(path) == orqsync_reads(path)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("UTF-16", "version: 1\ndefinitions: {}\n".encode("utf-16")),
        ("Latin-1", b"version: 1\ndefinitions:\n  caf\xe9: {type: text}\n"),
    ],
)
def test_they_agree_on_files_that_are_not_utf8(name: str, raw: bytes, tmp_path: Path):
    path = tmp_path / "definitions.yaml"
    path.write_bytes(raw)
    assert emulator_reads(path) is orqsync_reads(path) is None


# Pieces of files: mostly valid, with the mistakes above mixed in (one draw in ten or so).
def _mostly(valid: list[str], invalid: list[str]) -> st.SearchStrategy[str]:
    """A valid piece most of the time, an invalid one now and then."""
    return st.sampled_from(valid * 8 + invalid)


_OPTIONS = _mostly(
    ["good", "bad", "yes", "no", "1", "2.5", "true", "'quoted'", "0x1F", ".nan", "2024-05-01"],
    ["''", "' '", "~", "null", "[a]", "{value: x}", "!custom x", "!!str s"],
)
_BOUNDS = _mostly(
    ["0", "1", "-1", "5", "0.5", "-1.5", "1e3", "0x10", "0o7", "+3", "!!int 2"],
    [".nan", ".inf", "-.inf", "1e400", "'1'", "true", "1_000", "~", "-0x10", "[1]", "low"],
)
_TYPES = _mostly(
    ["single_select", "multi_select", "range", "text", "boolean", "'text'"],
    ["correction", "stars", "~", "[text]"],
)
_EXTRAS = st.sampled_from(
    [
        "id: X1",
        "id: 01HXYZABCDEFGHJKMNPQRSTVWX",
        "description: a text",
        "description: 5",
        "id: ~",
        "config: {min: 0}",
        "x: 1",
    ]
)


@st.composite
def _definition(draw: st.DrawFn) -> str:
    mistake = draw(st.integers(0, 9)) == 0
    kind = draw(_TYPES)
    fields = [f"type: {kind}"]
    if "select" in kind or (mistake and draw(st.booleans())):
        fields.append(f"options: [{', '.join(draw(st.lists(_OPTIONS, max_size=4)))}]")
    if kind == "range" or (mistake and draw(st.booleans())):
        fields.extend(f"{name}: {draw(_BOUNDS)}" for name in ("min", "max"))
    if draw(st.integers(0, 4)) == 0:
        fields.append(draw(_EXTRAS))
    if mistake and len(fields) > 1 and draw(st.booleans()):
        fields.pop(draw(st.integers(0, len(fields) - 1)))
    return "{" + ", ".join(draw(st.permutations(fields))) + "}"


@st.composite
def _file(draw: st.DrawFn) -> str:
    version = draw(_mostly(["version: 1\n", "version: 1.0\n"], ["", "version: 2\n"]))
    keys = draw(st.lists(_mostly(["a", "b", "c", "no", "'1'"], ["''", "~", "a"]), max_size=4))
    if not keys:
        return version + "definitions: {}\n"
    entries = "".join(f"  {key}: {draw(_definition())}\n" for key in keys)
    return version + "definitions:\n" + entries


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_file())
def test_they_agree_on_drawn_files(text: str):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "definitions.yaml"
        path.write_text(text, encoding="utf-8")
        assert emulator_reads(path) == orqsync_reads(path), text
