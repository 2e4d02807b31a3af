"""definitions.yaml: the reader, its error messages, and orq.ai's built-in defaults."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orqsync.emulator import DefinitionsError, Emulator, EmulatorConfig
from orqsync.emulator.definitions import (
    DEFAULT_DEFINITIONS,
    Definition,
    derived_id,
    load_definitions,
    parse_definitions,
)

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
        "version: 1\n"
        "definitions:\n"
        "  answered: {type: single_select, options: [yes, no, on, off, true, 'quoted']}\n"
        "  stars: {type: single_select, options: [1, 2.50, 1e3, 0x1F]}\n"
    )
    assert definitions["answered"].options == ("yes", "no", "on", "off", "true", "quoted")
    assert definitions["stars"].options == ("1", "2.50", "1e3", "0x1F")


def test_a_definition_keeps_the_id_its_file_gives_and_others_get_a_derived_one():
    definitions = parse_definitions(
        "version: 1\n"
        "definitions:\n"
        "  rating: {type: single_select, options: [good, bad], id: 01HXYZABCDEFGHJKMNPQRSTVWX}\n"
        "  score: {type: range, min: 0, max: 1, id: '01234567890123456789012345'}\n"
        "  approved: {type: boolean}\n"
    )
    assert definitions["rating"].id == "01HXYZABCDEFGHJKMNPQRSTVWX"
    assert definitions["score"].id == "01234567890123456789012345"
    assert definitions["approved"].id == derived_id("approved")


@pytest.mark.parametrize(
    "written", ["X1", "''", "01hxyzabcdefghjkmnpqrstvwx", "01HXYZABCDEFGHJKMNPQRSTVWI", "A" * 27]
)
def test_an_id_that_is_not_a_ulid_is_refused_where_it_is(written: str):
    text = f"version: 1\ndefinitions:\n  note: {{type: text, id: {written}}}\n"
    with pytest.raises(DefinitionsError) as raised:
        parse_definitions(text, source="definitions.yaml")
    assert str(raised.value) == (
        'definitions.yaml:3:26: the id of definition "note" is not an orq.ai id (a ULID: 26 '
        "characters, digits and capitals but I, L, O and U)"
    )
    assert raised.value.hint == "copy the id from orq.ai, or leave the field out"


def test_a_derived_id_is_ulid_shaped_and_the_same_in_every_run():
    assert derived_id("rating") == "5X5EA9ZHS83Q85R2EV7YP9EY32"
    assert derived_id("defects") == "2CNQT3TCW87SYQFRBHV4GVHBY7"
    for key in ("rating", "Rating", "a", "x" * 255, "café"):
        assert re.fullmatch(r"[0-7][0-9A-HJKMNP-TV-Z]{25}", derived_id(key)), key
    assert derived_id("rating") != derived_id("Rating")
    assert Definition("rating", "text").id == derived_id("rating")
    assert DEFAULT_DEFINITIONS["rating"].id == "5X5EA9ZHS83Q85R2EV7YP9EY32"
    assert Definition("rating", "text", id="01HX").id == "01HX"


def test_keys_that_yaml_would_read_as_booleans_stay_strings():
    definitions = parse_definitions(
        "version: 1\ndefinitions:\n  no: {type: boolean}\n  on: {type: text}\n"
    )
    assert sorted(definitions) == ["no", "on"]


def test_range_bounds_are_read_as_yaml_1_2_numbers():
    definitions = parse_definitions(
        "version: 1\n"
        "definitions:\n"
        "  score: {type: range, min: -1.5, max: 2.5, id: 01HXYZABCDEFGHJKMNPQRSTVWX, "
        "description: a score}\n"
        "  hex: {type: range, min: 0x10, max: 1e3}\n"
        "  tagged: {type: range, min: !!str 1, max: !!int 1}\n"
    )
    assert (definitions["score"].minimum, definitions["score"].maximum) == (-1.5, 2.5)
    assert (definitions["hex"].minimum, definitions["hex"].maximum) == (16, 1000.0)
    assert (definitions["tagged"].minimum, definitions["tagged"].maximum) == (1, 1)


def test_an_empty_definitions_mapping_is_accepted_as_orqsync_accepts_it():
    assert parse_definitions("version: 1\ndefinitions: {}\n") == {}


V1 = "version: 1\ndefinitions:\n"
TYPES = "single_select, multi_select, range, text, boolean"


@pytest.mark.parametrize(
    ("text", "expected", "hint"),
    [
        (
            "",
            "defs.yaml: the file is empty; expected `version: 1` and `definitions:`",
            "start with `version: 1` and a `definitions:` mapping",
        ),
        (
            "- a\n",
            "defs.yaml:1:1: the definitions file must be a mapping",
            "start with `version: 1` and a `definitions:` mapping",
        ),
        (
            "version: 1\n",
            "defs.yaml:1:1: missing `definitions:` (a mapping of key to definition)",
            "add `definitions:` with one entry per Human Review definition",
        ),
        (
            "definitions: {}\n",
            "defs.yaml:1:1: missing `version: 1`",
            "add `version: 1` at the top",
        ),
        (
            "version: 2\ndefinitions: {}\n",
            "defs.yaml:1:10: unsupported version 2; use `version: 1`",
            "write `version: 1`",
        ),
        (
            "version: '1'\ndefinitions: {}\n",
            'defs.yaml:1:10: unsupported version "1"; use `version: 1`',
            "write `version: 1`",
        ),
        (
            "version: 1\nworkspace: w\ndefinitions: {}\n",
            'defs.yaml:2:1: unknown field "workspace" at the top level',
            "the top level holds only `version: 1`, `definitions:` and `evaluators:`",
        ),
        (
            "version: 1\ndefinitions: [1, 2]\n",
            "defs.yaml:2:14: `definitions` must be a mapping of key to definition",
            "write each definition as `key: {type: ...}` under `definitions:`",
        ),
        (
            V1 + "  - {key: rating, type: single_select, options: [good, bad]}\n",
            "defs.yaml:3:3: `definitions` must be a mapping of key to definition",
            "write each definition as `key: {type: ...}` under `definitions:`",
        ),
        (
            V1 + "  rating: good\n",
            'defs.yaml:3:11: definition "rating" must be a mapping',
            "write `rating: {type: ...}`",
        ),
        (
            V1 + "  rating: {options: [a]}\n",
            f'defs.yaml:3:3: definition "rating" needs a `type:` ({TYPES})',
            "add the type the definition has in orq.ai",
        ),
        (
            V1 + "  rating: {type: categorical}\n",
            'defs.yaml:3:18: definition "rating" has unknown type "categorical"',
            f"use one of {TYPES}",
        ),
        (
            V1 + "  fix: {type: correction}\n",
            'defs.yaml:3:15: definition "fix" has unknown type "correction"',
            f"use one of {TYPES}",
        ),
        (
            V1 + "  rating: {type: single_select}\n",
            'defs.yaml:3:3: select definition "rating" needs `options:`',
            "list the options the definition has in orq.ai",
        ),
        (
            V1 + "  rating: {type: multi_select, options: []}\n",
            'defs.yaml:3:41: the options of "rating" must be a non-empty list',
            "list the options the definition has in orq.ai, e.g. [good, bad]",
        ),
        (
            V1 + "  rating: {type: single_select, options: [a, b, a]}\n",
            'defs.yaml:3:49: option "a" of "rating" is listed twice (first on line 3)',
            "remove one of the two",
        ),
        (
            V1 + "  rating: {type: single_select, options: ['']}\n",
            'defs.yaml:3:43: an option of "rating" is empty',
            "remove it, or write the option's text",
        ),
        (
            V1 + "  rating: {type: single_select, options: [a, null]}\n",
            'defs.yaml:3:46: an option of "rating" must be text, a number or true/false',
            "write the option's text",
        ),
        (
            V1 + "  rating: {type: single_select, options: [{value: good}]}\n",
            'defs.yaml:3:43: an option of "rating" must be text, a number or true/false',
            "write the option's text",
        ),
        (
            V1 + "  rating: {type: single_select, options: [a], display_name: Rating}\n",
            'defs.yaml:3:47: single_select definition "rating" has no field `display_name`',
            "remove it; a single_select definition takes type, id, description, options",
        ),
        (
            V1 + "  score: {type: range, min: 0, max: 1, options: [a]}\n",
            'defs.yaml:3:40: range definition "score" has no field `options`',
            "remove it; a range definition takes type, id, description, min, max",
        ),
        (
            V1 + "  stars: {type: range, config: {min: 1, max: 5}}\n",
            'defs.yaml:3:24: range definition "stars" has no field `config`',
            "remove it; a range definition takes type, id, description, min, max",
        ),
        (
            V1 + "  note: {type: text, description: 5}\n",
            'defs.yaml:3:35: the description of definition "note" must be text',
            "put the value in quotes",
        ),
        (
            V1 + "  score: {type: range, min: 0}\n",
            'defs.yaml:3:3: range definition "score" needs `max:`',
            "write a number, such as 0 or 1",
        ),
        (
            V1 + "  score: {type: range, min: low, max: 1}\n",
            'defs.yaml:3:29: `min` of "score" must be a number, got low',
            "write a number, such as 0 or 1",
        ),
        (
            V1 + "  score: {type: range, min: '0', max: 1}\n",
            'defs.yaml:3:29: `min` of "score" must be a number, got "0"',
            "write a number, such as 0 or 1",
        ),
        (
            V1 + "  score: {type: range, min: 0, max: .inf}\n",
            'defs.yaml:3:37: `max` of "score" is .inf, not a finite number',
            "write a number, such as 0 or 1",
        ),
        (
            V1 + "  score: {type: range, min: .nan, max: 1}\n",
            'defs.yaml:3:29: `min` of "score" is .nan, not a finite number',
            "write a number, such as 0 or 1",
        ),
        (
            V1 + "  score: {type: range, min: 5, max: 1}\n",
            'defs.yaml:3:29: range "score" has min 5 greater than max 1',
            "swap min and max",
        ),
        (
            V1 + "  rating: {type: text}\n  rating: {type: boolean}\n",
            'defs.yaml:4:3: duplicate key "rating" (first on line 3)',
            "remove one of the two",
        ),
        (
            V1 + "  '': {type: text}\n",
            "defs.yaml:3:3: a definition key must be 1 to 255 characters long",
            "write the key as orq.ai shows it",
        ),
        (
            V1 + "  ~: {type: text}\n",
            "defs.yaml:3:3: a mapping key must be text",
            "write the key as plain text",
        ),
        (
            V1 + "  base: &b {type: text}\n  note: {<<: *b}\n",
            "defs.yaml:4:10: YAML merge keys (<<) are not supported",
            "write the fields out in full",
        ),
        (
            V1 + "  note: !custom {type: text}\n",
            "defs.yaml:3:9: unsupported YAML tag !custom",
            "remove the tag",
        ),
        (
            "version: 1\ndefinitions: {}\n---\nversion: 1\n",
            "defs.yaml:3:1: not valid YAML: the file holds more than one YAML document",
            'remove the "---" line and what follows it',
        ),
    ],
)
def test_a_broken_file_is_refused_with_file_line_column_and_hint(
    text: str, expected: str, hint: str
):
    with pytest.raises(DefinitionsError) as raised:
        parse_definitions(text, source="defs.yaml")
    assert (str(raised.value), raised.value.hint) == (expected, hint)


def test_yaml_syntax_errors_name_the_place():
    with pytest.raises(DefinitionsError) as raised:
        parse_definitions("version: 1\ndefinitions:\n  rating: {type: [\n", source="defs.yaml")
    assert str(raised.value).startswith("defs.yaml:4:1: not valid YAML: ")
    assert raised.value.hint == "fix the YAML syntax here"


def test_an_alias_bomb_is_refused_without_expanding_it():
    lines = ["version: 1", "definitions:", "  a: &a0 {type: text, description: x}"]
    lines += [f"  b{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 12)]
    with pytest.raises(DefinitionsError) as raised:
        parse_definitions("\n".join(lines) + "\n", source="defs.yaml")
    assert "aliases expand to more than 10000 extra nodes" in str(raised.value)


def test_deep_nesting_is_refused():
    value = "[" * 70 + "]" * 70
    text = f"version: 1\ndefinitions:\n  a: {{type: text, description: {value}}}\n"
    with pytest.raises(DefinitionsError) as raised:
        parse_definitions(text, source="defs.yaml")
    assert str(raised.value) == "defs.yaml:3:93: lists and mappings are nested too deeply"


def test_a_file_that_is_not_utf8_is_refused_with_the_place(tmp_path: Path):
    path = tmp_path / "defs.yaml"
    path.write_bytes(b"version: 1\ndefinitions:\n  caf\xe9: {type: text}\n")
    with pytest.raises(DefinitionsError) as raised:
        load_definitions(str(path))
    assert str(raised.value) == f"{path}:3:6: the file is not valid UTF-8 (byte 0xe9)"
    assert raised.value.hint == "save it as UTF-8"


def test_a_utf8_byte_order_mark_is_allowed(tmp_path: Path):
    path = tmp_path / "defs.yaml"
    path.write_bytes(b"\xef\xbb\xbfversion: 1\ndefinitions:\n  note: {type: text}\n")
    assert list(load_definitions(str(path))) == ["note"]


def test_a_missing_file_is_refused_with_its_path(tmp_path: Path):
    path = tmp_path / "missing.yaml"
    with pytest.raises(DefinitionsError) as raised:
        load_definitions(str(path))
    assert str(raised.value).startswith(f"{path}: cannot read the definitions file: ")


def test_the_emulator_refuses_to_start_on_a_broken_definitions_file(tmp_path: Path):
    path = tmp_path / "definitions.yaml"
    path.write_text("version: 1\ndefinitions:\n  rating: {type: nope}\n", encoding="utf-8")
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
