"""definitions.yaml: the reader, its error messages, and orq.ai's built-in defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from orqsync.emulator import DefinitionsError, Emulator, EmulatorConfig
from orqsync.emulator.definitions import Definition, load_definitions, parse_definitions

from .emulator_helpers import client_for


def test_the_design_example_is_read_into_definitions(definitions_file: Path):
    definitions = load_definitions(str(definitions_file))
    assert definitions["rating"] == Definition("rating", "single_select", ("good", "bad"))
    assert definitions["defects"].options == (
        "grammatical",
        "spelling",
        "hallucination",
        "ambiguity",
    )
    assert definitions["confidence_score"] == Definition(
        "confidence_score", "range", minimum=0, maximum=1
    )
    assert definitions["correction"] == Definition("correction", "text")
    assert definitions["approved"] == Definition("approved", "boolean")


def test_option_values_are_kept_exactly_as_written():
    definitions = parse_definitions(
        "definitions:\n"
        "  answered: {type: single_select, options: [yes, no, on, off, true, 'quoted']}\n"
        "  stars: {type: single_select, options: [1, 2.50, 1e3, null]}\n"
    )
    assert definitions["answered"].options == ("yes", "no", "on", "off", "true", "quoted")
    assert definitions["stars"].options == ("1", "2.50", "1e3", "null")


def test_keys_that_yaml_would_read_as_booleans_stay_strings():
    definitions = parse_definitions("definitions:\n  no: {type: boolean}\n  on: {type: text}\n")
    assert sorted(definitions) == ["no", "on"]


def test_the_api_shapes_of_options_and_range_bounds_are_accepted():
    definitions = parse_definitions(
        "definitions:\n"
        "  rating:\n"
        "    type: single_select\n"
        "    display_name: Rating\n"
        "    options: [{value: good, sentiment: positive}, {value: bad, sentiment: negative}]\n"
        "  stars: {type: range, config: {min: 1, max: 5}}\n"
        "  fix: {type: correction}\n"
    )
    assert definitions["rating"].options == ("good", "bad")
    assert (definitions["stars"].minimum, definitions["stars"].maximum) == (1, 5)
    assert definitions["fix"].type == "correction"


def test_definitions_may_be_a_list_of_keyed_entries():
    definitions = parse_definitions(
        "version: 1\ndefinitions:\n"
        "  - {key: rating, type: single_select, options: [good, bad]}\n"
        "  - {key: score, type: range, min: -1.5, max: 2.5}\n"
    )
    assert list(definitions) == ["rating", "score"]
    assert definitions["score"].minimum == -1.5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "defs.yaml: the file is empty; expected `version: 1` and `definitions:`"),
        ("version: 1\n", "defs.yaml:1:1: missing `definitions:` (a mapping of key to definition)"),
        (
            "version: 2\ndefinitions: {}\n",
            "defs.yaml:1:10: unsupported version 2; use `version: 1`",
        ),
        ("definitions: {}\n", "defs.yaml:1:14: `definitions` is empty; declare at least one"),
        ("definitions: [1, 2]\n", "defs.yaml:1:15: a definition must be a mapping"),
        (
            "definitions:\n  rating: {options: [a]}\n",
            'defs.yaml:2:3: definition "rating" needs a `type:` (single_select, multi_select, '
            "range, text, boolean, correction)",
        ),
        (
            "definitions:\n  rating: {type: categorical}\n",
            'defs.yaml:2:18: definition "rating" has unknown type "categorical"; use one of '
            "single_select, multi_select, range, text, boolean, correction",
        ),
        (
            "definitions:\n  rating: {type: single_select}\n",
            'defs.yaml:2:3: select definition "rating" needs `options:`',
        ),
        (
            "definitions:\n  rating: {type: multi_select, options: []}\n",
            'defs.yaml:2:41: the options of "rating" must be a non-empty list',
        ),
        (
            "definitions:\n  rating: {type: single_select, options: [a, b, a]}\n",
            'defs.yaml:2:49: option "a" of "rating" is listed twice',
        ),
        (
            "definitions:\n  rating: {type: single_select, options: ['']}\n",
            'defs.yaml:2:43: an option of "rating" is empty',
        ),
        (
            "definitions:\n  score: {type: range, min: 0}\n",
            'defs.yaml:2:3: range definition "score" needs `max:`',
        ),
        (
            "definitions:\n  score: {type: range, min: low, max: 1}\n",
            "defs.yaml:2:29: `min` of \"score\" must be a number, got 'low'",
        ),
        (
            "definitions:\n  score: {type: range, min: 5, max: 1}\n",
            'defs.yaml:2:29: range "score" has min 5 greater than max 1',
        ),
        (
            "definitions:\n  rating: {type: text}\n  rating: {type: boolean}\n",
            'defs.yaml:3:3: duplicate key "rating" in `definitions`',
        ),
        (
            "definitions:\n  - {type: text}\n",
            "defs.yaml:2:5: a definition in a list needs a `key:`",
        ),
    ],
)
def test_a_broken_file_is_refused_with_file_line_and_column(text: str, expected: str):
    with pytest.raises(DefinitionsError) as raised:
        parse_definitions(text, source="defs.yaml")
    assert str(raised.value) == expected


def test_yaml_syntax_errors_name_the_place():
    with pytest.raises(DefinitionsError) as raised:
        parse_definitions("definitions:\n  rating: {type: [\n", source="defs.yaml")
    assert str(raised.value).startswith("defs.yaml:3:1: not valid YAML: ")


def test_a_missing_file_is_refused_with_its_path(tmp_path: Path):
    path = tmp_path / "missing.yaml"
    with pytest.raises(DefinitionsError) as raised:
        load_definitions(str(path))
    assert str(raised.value).startswith(f"{path}: cannot read the definitions file: ")


def test_the_emulator_refuses_to_start_on_a_broken_definitions_file(tmp_path: Path):
    path = tmp_path / "definitions.yaml"
    path.write_text("definitions:\n  rating: {type: nope}\n", encoding="utf-8")
    with pytest.raises(DefinitionsError):
        Emulator(EmulatorConfig(api_keys=("k",), definitions_path=str(path)))


def test_without_a_definitions_file_orqs_rating_and_defects_exist():
    emulator = Emulator(EmulatorConfig(api_keys=("k",)))
    try:
        assert set(emulator.definitions) == {"rating", "defects"}
        assert emulator.definitions["defects"].options == (
            "grammatical",
            "spelling",
            "hallucination",
            "repetition",
            "inappropriate",
            "off_topic",
            "incompleteness",
            "ambiguity",
        )
        with client_for(emulator, api_key="k") as http:
            ok = http.post(
                "/v2/traces/t/spans/s/annotation",
                json={"annotations": [{"key": "defects", "value": ["off_topic", "repetition"]}]},
            )
            unknown = http.post(
                "/v2/traces/t/spans/s/annotation",
                json={"annotations": [{"key": "approved", "value": True}]},
            )
        assert (ok.status_code, unknown.status_code) == (200, 404)
    finally:
        emulator.close()


def test_config_refuses_a_single_string_as_api_keys():
    with pytest.raises(TypeError):
        EmulatorConfig(api_keys="k")  # type: ignore[arg-type]


def test_an_empty_key_list_rejects_every_request():
    emulator = Emulator(EmulatorConfig(api_keys=()))
    try:
        with client_for(emulator, api_key="") as http:
            response = http.post(
                "/v2/traces/t/spans/s/annotation",
                json={"annotations": [{"key": "rating", "value": "good"}]},
            )
        assert response.status_code == 401
    finally:
        emulator.close()
