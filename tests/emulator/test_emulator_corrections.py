"""Corrections of evaluator results: the evaluations file, create and delete with
`parent_annotation_id(s)`, storage and the /_emulator/ routes."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from orqsync.emulator import DefinitionsError, Emulator, EvaluationsError
from orqsync.emulator.evaluations import load_evaluations, parse_evaluations

from .emulator_helpers import (
    ANNOTATION_PATH,
    ANY_CATEGORY_EVAL,
    BOOLEAN_EVAL,
    CATEGORY_EVAL,
    ELSEWHERE_EVAL,
    NUMBER_EVAL,
    OTHER_SPAN,
    SPAN,
    STRING_EVAL,
    TRACE,
    annotate,
    client_for,
    remove,
)

MakeEmulator = Callable[..., Emulator]


@pytest.fixture
def emulator(make_emulator: MakeEmulator, evaluations_file: Path) -> Emulator:
    """An emulator with the example definitions and evaluator results."""
    return make_emulator(evaluations_path=str(evaluations_file))


def error(response: httpx.Response) -> tuple[int, str]:
    """Status and message of an annotation error, checking the {code, message, category} shape."""
    body = response.json()
    assert set(body) == {"code", "message", "category"}
    assert body["category"] == {400: "bad_request", 404: "not_found"}[response.status_code]
    return response.status_code, body["message"]


def fix(parent_id: str, value: object, **more: object) -> dict[str, object]:
    """A correction item."""
    return {"parent_annotation_id": parent_id, "value": value, **more}


def not_found(parent_id: str, span: str = SPAN) -> tuple[int, str]:
    return 404, f'The evaluation with id "{parent_id}" for span {span} was not found.'


def stored(emulator: Emulator) -> dict[str, object]:
    return emulator.span(TRACE, SPAN)["corrections"]


# --- the evaluations file ------------------------------------------------------------------


def test_the_file_is_read_in_order_with_its_optional_fields(emulator: Emulator):
    results = emulator.evaluator_results()
    assert [result["id"] for result in results] == [
        BOOLEAN_EVAL,
        NUMBER_EVAL,
        CATEGORY_EVAL,
        ANY_CATEGORY_EVAL,
        STRING_EVAL,
        ELSEWHERE_EVAL,
    ]
    assert results[2] == {
        "id": CATEGORY_EVAL,
        "trace_id": TRACE,
        "span_id": SPAN,
        "output": "categorical",
        "options": ["billing", "technical"],
        "evaluator": "topic_judge",
    }
    assert results[0] == {
        "id": BOOLEAN_EVAL,
        "trace_id": TRACE,
        "span_id": SPAN,
        "output": "boolean",
    }


def test_ids_and_options_are_taken_as_written():
    text = (
        "evaluator_results:\n"
        "  - {id: 0x1F, trace_id: 1e5, span_id: 1234567890123456, output: categorical,"
        " options: [no, 1.10, true]}\n"
    )
    (result,) = parse_evaluations(text).values()
    assert (result.id, result.trace_id, result.span_id) == ("0x1F", "1e5", "1234567890123456")
    assert result.options == ("no", "1.10", "true")


def test_an_empty_list_of_results_is_allowed():
    assert parse_evaluations("evaluator_results: []\n") == {}


GOOD = "  - {id: A, trace_id: t, span_id: s, output: boolean}\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "ev.yaml: the file is empty; expected `evaluator_results:`"),
        ("- a\n", "ev.yaml:1:1: the evaluations file must be a mapping"),
        ("evaluator_results: {}\n", "ev.yaml:1:20: `evaluator_results` must be a list"),
        (
            "version: 1\nevaluator_results: []\n",
            'ev.yaml:1:1: unknown field "version" at the top level',
        ),
        ("results: []\n", 'ev.yaml:1:1: unknown field "results" at the top level'),
        ("{}\n", "ev.yaml:1:1: missing `evaluator_results:`"),
        ("evaluator_results:\n  - text\n", "ev.yaml:2:5: an evaluator result must be a mapping"),
        (
            "evaluator_results:\n  - id: A\n    trace_id: t\n    span_id: s\n    output: bool\n",
            'ev.yaml:5:13: unknown output "bool"',
        ),
        (
            "evaluator_results:\n  - {id: A, trace_id: t, span_id: s, output: [boolean]}\n",
            "ev.yaml:2:46: `output` must be text",
        ),
        (
            "evaluator_results:\n  - id: A\n    trace_id: t\n    span_id: s\n"
            "    output: boolean\n    colour: red\n",
            'ev.yaml:6:5: an evaluator result has no field "colour"',
        ),
        (
            "evaluator_results:\n  - id: A\n    trace_id: t\n    span_id: s\n",
            "ev.yaml:2:5: an evaluator result needs `output`",
        ),
        (
            "evaluator_results:\n  - {trace_id: t, span_id: s, output: string}\n",
            "ev.yaml:2:5: an evaluator result needs `id`",
        ),
        ("evaluator_results:\n" + GOOD + GOOD, 'ev.yaml:3:10: duplicate id "A" (first on line 2)'),
        (
            "evaluator_results:\n  - {id: A, trace_id: t, span_id: s, output: number,"
            " options: [a]}\n",
            "ev.yaml:2:63: a number result takes no options",
        ),
        (
            "evaluator_results:\n  - {id: A, trace_id: t, span_id: s, output: categorical,"
            " options: []}\n",
            "ev.yaml:2:68: `options` must be a non-empty list",
        ),
        (
            "evaluator_results:\n  - {id: A, trace_id: t, span_id: s, output: categorical,"
            " options: [a, b, a]}\n",
            'ev.yaml:2:75: option "a" is listed twice (also at position 1)',
        ),
        (
            "evaluator_results:\n  - {id: A, trace_id: t, span_id: s, output: categorical,"
            " options: [a, '']}\n",
            "ev.yaml:2:72: an option must be non-empty text",
        ),
        (
            "evaluator_results:\n  - {id: '', trace_id: t, span_id: s, output: string}\n",
            "ev.yaml:2:10: `id` must be non-empty text",
        ),
        (
            "evaluator_results:\n  - {id: A, trace_id: t, span_id: ~, output: string}\n",
            "ev.yaml:2:35: `span_id` must be non-empty text",
        ),
        (
            "evaluator_results:\n  - {id: A, trace_id: {x: 1}, span_id: s, output: string}\n",
            "ev.yaml:2:23: `trace_id` must be non-empty text",
        ),
        (
            "evaluator_results:\n" + GOOD + "  - {id: B, trace_id: t, span_id: s, output: string,"
            " evaluator: [x]}\n",
            "ev.yaml:3:65: `evaluator` must be non-empty text",
        ),
        (
            "evaluator_results:\n\t- x\n",
            "ev.yaml:2:1: not valid YAML: a tab character is not allowed here",
        ),
        ("evaluator_results: !!set {}\n", "ev.yaml:1:20: unsupported YAML tag !!set"),
        (
            "evaluator_results: []\nevaluator_results: []\n",
            'ev.yaml:2:1: duplicate key "evaluator_results" (first on line 1)',
        ),
    ],
)
def test_a_bad_file_names_the_place_and_says_what_to_do(text: str, message: str):
    with pytest.raises(EvaluationsError) as raised:
        parse_evaluations(text, source="ev.yaml")
    assert str(raised.value) == message
    assert raised.value.hint


def test_a_missing_field_has_a_hint_naming_it():
    with pytest.raises(EvaluationsError) as raised:
        parse_evaluations("evaluator_results:\n  - {id: A, trace_id: t, span_id: s}\n")
    assert raised.value.hint == "add its `output`: one of boolean, number, categorical, string"


def test_an_unreadable_or_undecodable_file_is_an_evaluations_error(tmp_path: Path):
    missing = tmp_path / "none.yaml"
    with pytest.raises(EvaluationsError, match="cannot read the evaluations file"):
        load_evaluations(str(missing))
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"evaluator_results:\n  - {id: \xe9}\n")
    with pytest.raises(EvaluationsError) as raised:
        load_evaluations(str(latin))
    assert str(raised.value) == f"{latin}:2:10: the file is not valid UTF-8 (byte 0xe9)"


def test_an_emulator_with_a_bad_file_does_not_start(make_emulator: MakeEmulator, tmp_path: Path):
    path = tmp_path / "evaluations.yaml"
    path.write_text("evaluator_results:\n  - {id: A}\n", encoding="utf-8")
    with pytest.raises(EvaluationsError) as raised:
        make_emulator(evaluations_path=str(path))
    # A DefinitionsError too: whoever reports a bad definitions file reports this one as well.
    assert isinstance(raised.value, DefinitionsError)
    assert str(raised.value) == f"{path}:2:5: an evaluator result needs `trace_id`"


def test_without_a_file_the_emulator_knows_no_evaluator_results(make_emulator: MakeEmulator):
    assert make_emulator().evaluator_results() == []


# --- create ----------------------------------------------------------------------------------


def test_a_correction_is_stored_with_its_explanation_and_metadata(
    client: httpx.Client, emulator: Emulator
):
    response = annotate(
        client,
        fix(STRING_EVAL, "Polite, not curt.", explanation="The reply thanks the user."),
        metadata={"identity_id": "alice"},
    )
    assert response.status_code == 200
    assert response.json() == {}
    assert emulator.corrections() == [
        {
            "trace_id": TRACE,
            "span_id": SPAN,
            "parent_annotation_id": STRING_EVAL,
            "value": "Polite, not curt.",
            "explanation": "The reply thanks the user.",
            "metadata": {"identity_id": "alice"},
        }
    ]
    assert emulator.annotations() == []


def test_a_correction_is_upserted_and_an_absent_explanation_is_none(
    client: httpx.Client, emulator: Emulator
):
    annotate(client, fix(NUMBER_EVAL, 0.2, explanation="too low"), metadata={"identity_id": "a"})
    annotate(client, fix(NUMBER_EVAL, 0.9), metadata={"identity_id": "b"})
    rows = emulator.corrections()
    assert [(row["value"], row["explanation"], row["metadata"]) for row in rows] == [
        (0.9, None, {"identity_id": "b"})
    ]


def test_the_last_correction_of_a_parent_id_in_one_request_wins(
    client: httpx.Client, emulator: Emulator
):
    assert annotate(client, fix(BOOLEAN_EVAL, True), fix(BOOLEAN_EVAL, False)).status_code == 200
    assert stored(emulator) == {BOOLEAN_EVAL: {"value": False, "explanation": None}}


def test_annotations_and_corrections_go_together_in_one_request(
    client: httpx.Client, emulator: Emulator
):
    response = annotate(
        client,
        {"key": "rating", "value": "good"},
        fix(CATEGORY_EVAL, "billing", explanation="asks about an invoice"),
        {"key": "approved", "value": True},
        fix(BOOLEAN_EVAL, False),
    )
    assert response.status_code == 200
    assert emulator.span(TRACE, SPAN) == {
        "annotations": {"rating": "good", "approved": True},
        "metadata": {"rating": {}, "approved": {}},
        "corrections": {
            BOOLEAN_EVAL: {"value": False, "explanation": None},
            CATEGORY_EVAL: {"value": "billing", "explanation": "asks about an invoice"},
        },
    }


@pytest.mark.parametrize(
    ("parent_id", "value"),
    [
        (BOOLEAN_EVAL, True),
        (BOOLEAN_EVAL, False),
        (NUMBER_EVAL, 0),
        (NUMBER_EVAL, -2.5),
        (NUMBER_EVAL, 1e300),
        (CATEGORY_EVAL, "technical"),
        (CATEGORY_EVAL, ["billing"]),
        (CATEGORY_EVAL, ["technical", "billing"]),
        (ANY_CATEGORY_EVAL, "anything at all"),
        (ANY_CATEGORY_EVAL, ["x", "y"]),
        (STRING_EVAL, ""),
        (STRING_EVAL, "free text"),
    ],
)
def test_each_output_type_accepts_its_values(
    client: httpx.Client, emulator: Emulator, parent_id: str, value: object
):
    assert annotate(client, fix(parent_id, value)).status_code == 200
    assert stored(emulator) == {parent_id: {"value": value, "explanation": None}}


@pytest.mark.parametrize(
    ("parent_id", "value", "message"),
    [
        (BOOLEAN_EVAL, "true", "Invalid value: true. Expected true or false."),
        (BOOLEAN_EVAL, 1, "Invalid value: 1. Expected true or false."),
        (BOOLEAN_EVAL, ["yes"], 'Invalid value: ["yes"]. Expected true or false.'),
        (NUMBER_EVAL, True, "Invalid value: true. Expected a finite number."),
        (NUMBER_EVAL, "0.5", "Invalid value: 0.5. Expected a finite number."),
        (NUMBER_EVAL, ["1"], 'Invalid value: ["1"]. Expected a finite number.'),
        (
            CATEGORY_EVAL,
            "sales",
            "Invalid value: sales. Valid options are: billing, technical.",
        ),
        (
            CATEGORY_EVAL,
            ["billing", "sales"],
            "Invalid value: sales. Valid options are: billing, technical.",
        ),
        (
            CATEGORY_EVAL,
            3,
            "Invalid value: 3. Expected a string or an array of strings; "
            "valid options are: billing, technical.",
        ),
        (
            ANY_CATEGORY_EVAL,
            False,
            "Invalid value: false. Expected a string or an array of strings.",
        ),
        (STRING_EVAL, 7, "Invalid value: 7. Expected a string."),
        (STRING_EVAL, ["a"], 'Invalid value: ["a"]. Expected a string.'),
        (STRING_EVAL, True, "Invalid value: true. Expected a string."),
    ],
)
def test_each_output_type_refuses_other_values(
    client: httpx.Client, emulator: Emulator, parent_id: str, value: object, message: str
):
    assert error(annotate(client, fix(parent_id, value))) == (400, message)
    assert emulator.corrections() == []


def test_a_number_too_large_for_a_double_is_not_finite(client: httpx.Client, emulator: Emulator):
    body = f'{{"annotations": [{{"parent_annotation_id": "{NUMBER_EVAL}", "value": 1e999}}]}}'
    response = client.post(ANNOTATION_PATH, content=body.encode())
    assert error(response) == (400, "Invalid value: Infinity. Expected a finite number.")
    assert emulator.corrections() == []


def test_an_explanation_of_3000_characters_is_accepted(client: httpx.Client, emulator: Emulator):
    assert annotate(client, fix(STRING_EVAL, "x", explanation="e" * 3000)).status_code == 200
    assert annotate(client, fix(NUMBER_EVAL, 1, explanation="😀" * 1500)).status_code == 200
    explanations = [row["explanation"] for row in emulator.corrections()]
    assert explanations == ["😀" * 1500, "e" * 3000]  # sorted by parent id: N1 before S1


@pytest.mark.parametrize(
    ("explanation", "got"),
    [("e" * 3001, ", got 3001"), ("😀" * 1500 + "e", ", got 3001"), (None, ""), (42, "")],
)
def test_an_explanation_over_3000_characters_or_not_text_is_refused(
    client: httpx.Client, emulator: Emulator, explanation: object, got: str
):
    response = annotate(client, fix(STRING_EVAL, "x", explanation=explanation))
    assert error(response) == (
        400,
        'Invalid annotation at index 0: "explanation" must be a string of at most 3000 '
        f"characters{got}.",
    )
    assert emulator.corrections() == []


def test_a_correction_value_obeys_the_string_limit(make_emulator, evaluations_file: Path):
    emulator = make_emulator(evaluations_path=str(evaluations_file), string_limit=3000)
    with client_for(emulator) as http:
        assert annotate(http, fix(STRING_EVAL, "x" * 3000)).status_code == 200
        assert error(annotate(http, fix(STRING_EVAL, "x" * 3001))) == (
            400,
            "String value exceeds maximum length of 3000 characters.",
        )


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            {"parent_annotation_id": BOOLEAN_EVAL, "value": True, "comment": "x"},
            'Invalid annotation at index 0: unknown field(s) "comment"; a correction has '
            '"parent_annotation_id", "value" and optionally "explanation".',
        ),
        (
            {"parent_annotation_id": BOOLEAN_EVAL},
            'Invalid annotation at index 0: "value" is required.',
        ),
        (
            {"parent_annotation_id": "", "value": True},
            'Invalid annotation at index 0: "parent_annotation_id" must be a non-empty string.',
        ),
        (
            {"parent_annotation_id": 5, "value": True},
            'Invalid annotation at index 0: "parent_annotation_id" must be a non-empty string.',
        ),
        (
            {"parent_annotation_id": CATEGORY_EVAL, "value": []},
            "Invalid value: []. A value is a string, a number, a boolean "
            "or a non-empty array of strings.",
        ),
        (
            {"parent_annotation_id": CATEGORY_EVAL, "value": None},
            "Invalid value: null. A value is a string, a number, a boolean "
            "or a non-empty array of strings.",
        ),
    ],
)
def test_a_correction_item_that_breaks_the_schema_is_400(
    client: httpx.Client, emulator: Emulator, item: dict[str, object], message: str
):
    assert error(annotate(client, item)) == (400, message)
    assert emulator.corrections() == []


def test_a_schema_error_in_a_later_item_comes_before_an_unknown_id(client: httpx.Client):
    response = annotate(client, fix("01JUNKNOWN", True), {"key": "rating"})
    assert error(response) == (400, 'Invalid annotation at index 1: "value" is required.')


def test_an_unknown_evaluator_result_is_404(client: httpx.Client, emulator: Emulator):
    response = annotate(client, fix("01JUNKNOWN", True))
    assert error(response) == not_found("01JUNKNOWN")
    assert response.json()["code"] == "evaluation_not_found"


def test_an_evaluator_result_of_another_span_is_404(client: httpx.Client, emulator: Emulator):
    assert error(annotate(client, fix(ELSEWHERE_EVAL, True))) == not_found(ELSEWHERE_EVAL)
    other_trace = client.post(
        f"/v2/traces/ffff/spans/{SPAN}/annotation",
        json={"annotations": [fix(BOOLEAN_EVAL, True)]},
    )
    assert error(other_trace) == not_found(BOOLEAN_EVAL)
    assert emulator.corrections() == []
    on_its_span = client.post(
        f"/v2/traces/{TRACE}/spans/{OTHER_SPAN}/annotation",
        json={"annotations": [fix(ELSEWHERE_EVAL, True)]},
    )
    assert on_its_span.status_code == 200
    assert [row["span_id"] for row in emulator.corrections()] == [OTHER_SPAN]


def test_an_unknown_span_is_404_before_the_evaluator_result(
    make_emulator: MakeEmulator, evaluations_file: Path
):
    emulator = make_emulator(
        evaluations_path=str(evaluations_file), known_spans=frozenset({("t", "s")})
    )
    with client_for(emulator) as http:
        assert error(annotate(http, fix("01JUNKNOWN", True))) == (
            404,
            f"Span with id {SPAN} for workspace emulator-workspace was not found.",
        )


@pytest.mark.parametrize(
    "bad",
    [
        fix("01JUNKNOWN", True),
        fix(NUMBER_EVAL, "high"),
        {"key": "tone", "value": "x"},
        {"key": "rating", "value": "meh"},
    ],
)
def test_a_request_with_one_bad_item_stores_nothing(
    client: httpx.Client, emulator: Emulator, bad: dict[str, object]
):
    annotate(client, fix(STRING_EVAL, "before"), {"key": "approved", "value": True})
    response = annotate(
        client,
        {"key": "rating", "value": "good"},
        fix(STRING_EVAL, "after"),
        fix(BOOLEAN_EVAL, True),
        bad,
    )
    assert response.status_code in (400, 404)
    assert emulator.span(TRACE, SPAN) == {
        "annotations": {"approved": True},
        "metadata": {"approved": {}},
        "corrections": {STRING_EVAL: {"value": "before", "explanation": None}},
    }


# --- delete ----------------------------------------------------------------------------------


def test_delete_removes_the_corrections_of_the_listed_parent_ids(
    client: httpx.Client, emulator: Emulator
):
    annotate(client, fix(BOOLEAN_EVAL, True), fix(NUMBER_EVAL, 3), fix(STRING_EVAL, "s"))
    response = remove(client, {"parent_annotation_ids": [BOOLEAN_EVAL, STRING_EVAL]})
    assert response.status_code == 200
    assert response.json() == {}
    assert stored(emulator) == {NUMBER_EVAL: {"value": 3, "explanation": None}}


def test_delete_of_a_known_result_without_a_correction_is_a_no_op(
    client: httpx.Client, emulator: Emulator
):
    annotate(client, fix(NUMBER_EVAL, 3))
    assert remove(client, {"parent_annotation_ids": [BOOLEAN_EVAL]}).status_code == 200
    assert stored(emulator) == {NUMBER_EVAL: {"value": 3, "explanation": None}}


def test_delete_takes_keys_and_parent_ids_in_one_request(client: httpx.Client, emulator: Emulator):
    annotate(
        client,
        {"key": "rating", "value": "good"},
        {"key": "approved", "value": False},
        fix(BOOLEAN_EVAL, True),
        fix(NUMBER_EVAL, 3),
    )
    body = {
        "keys": ["rating"],
        "parent_annotation_ids": [NUMBER_EVAL],
        "metadata": {"identity_id": "u"},
    }
    assert remove(client, body).status_code == 200
    view = emulator.span(TRACE, SPAN)
    assert view["annotations"] == {"approved": False}
    assert view["corrections"] == {BOOLEAN_EVAL: {"value": True, "explanation": None}}


@pytest.mark.parametrize(
    ("parent_ids", "expected"),
    [
        (["01JUNKNOWN"], not_found("01JUNKNOWN")),
        ([NUMBER_EVAL, ELSEWHERE_EVAL], not_found(ELSEWHERE_EVAL)),
    ],
)
def test_delete_of_an_unknown_or_foreign_parent_id_is_404_and_removes_nothing(
    client: httpx.Client, emulator: Emulator, parent_ids: list[str], expected: tuple[int, str]
):
    annotate(client, {"key": "rating", "value": "good"}, fix(NUMBER_EVAL, 3))
    body = {"keys": ["rating"], "parent_annotation_ids": parent_ids}
    assert error(remove(client, body)) == expected
    assert emulator.span(TRACE, SPAN)["annotations"] == {"rating": "good"}
    assert stored(emulator) == {NUMBER_EVAL: {"value": 3, "explanation": None}}


def test_delete_takes_at_most_ten_parent_ids(client: httpx.Client, emulator: Emulator):
    annotate(client, fix(BOOLEAN_EVAL, True))
    assert remove(client, {"parent_annotation_ids": [BOOLEAN_EVAL] * 10}).status_code == 200
    assert emulator.corrections() == []
    annotate(client, fix(BOOLEAN_EVAL, True))
    assert error(remove(client, {"parent_annotation_ids": [BOOLEAN_EVAL] * 11})) == (
        400,
        'Invalid request body: "parent_annotation_ids" must have at most 10 items, got 11.',
    )
    assert len(emulator.corrections()) == 1


@pytest.mark.parametrize(
    "body",
    [{"parent_annotation_ids": []}, {"keys": [], "parent_annotation_ids": []}, {"metadata": {}}],
)
def test_delete_with_neither_list_filled_is_400(client: httpx.Client, body: dict[str, object]):
    assert error(remove(client, body)) == (
        400,
        'Nothing to remove: "keys" or "parent_annotation_ids" must list 1 to 10 items.',
    )


# --- storage and reset -----------------------------------------------------------------------


def test_corrections_survive_closing_and_reopening_the_db(
    make_emulator: MakeEmulator, evaluations_file: Path, tmp_path: Path
):
    db = str(tmp_path / "emulator.db")
    first = make_emulator(evaluations_path=str(evaluations_file), db_path=db)
    with client_for(first) as http:
        annotate(http, fix(CATEGORY_EVAL, ["billing"], explanation="why"), metadata={"x": 1})
    first.close()
    second = make_emulator(evaluations_path=str(evaluations_file), db_path=db)
    assert second.corrections() == [
        {
            "trace_id": TRACE,
            "span_id": SPAN,
            "parent_annotation_id": CATEGORY_EVAL,
            "value": ["billing"],
            "explanation": "why",
            "metadata": {"x": 1},
        }
    ]


def test_a_database_made_before_corrections_gains_their_table(
    make_emulator: MakeEmulator, evaluations_file: Path, tmp_path: Path
):
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as old:
        old.executescript(
            "CREATE TABLE annotations (trace_id TEXT NOT NULL, span_id TEXT NOT NULL,"
            " key TEXT NOT NULL, value TEXT NOT NULL, metadata TEXT NOT NULL,"
            " PRIMARY KEY (trace_id, span_id, key)) WITHOUT ROWID;"
            "CREATE TABLE feedback (id TEXT PRIMARY KEY, record TEXT NOT NULL);"
            "INSERT INTO annotations VALUES ('t', 's', 'rating', '\"good\"', '{}');"
            "PRAGMA user_version=1;"
        )
    old.close()
    emulator = make_emulator(evaluations_path=str(evaluations_file), db_path=str(db))
    with client_for(emulator) as http:
        assert annotate(http, fix(BOOLEAN_EVAL, True)).status_code == 200
    assert [row["key"] for row in emulator.annotations()] == ["rating"]
    assert len(emulator.corrections()) == 1


def test_reset_wipes_corrections_and_runtime_results_but_keeps_the_files(
    client: httpx.Client, emulator: Emulator
):
    emulator.add_evaluator_results(
        [{"id": "RUNTIME", "trace_id": TRACE, "span_id": SPAN, "output": "string"}]
    )
    annotate(client, fix("RUNTIME", "x"), fix(BOOLEAN_EVAL, True))
    assert len(emulator.corrections()) == 2
    assert client.post("/_emulator/reset").status_code == 200
    assert emulator.corrections() == []
    assert [result["id"] for result in emulator.evaluator_results()][-1] == ELSEWHERE_EVAL
    assert len(emulator.evaluator_results()) == 6
    assert error(annotate(client, fix("RUNTIME", "x"))) == not_found("RUNTIME")
    assert annotate(client, fix(BOOLEAN_EVAL, False)).status_code == 200


# --- adding evaluator results at run time ----------------------------------------------------


def test_results_added_in_python_can_be_corrected(make_emulator: MakeEmulator):
    emulator = make_emulator()
    result: dict[str, object] = {
        "id": "E1",
        "trace_id": "t",
        "span_id": "s",
        "output": "categorical",
        "options": ["a", "b"],
        "evaluator": "judge",
    }
    assert emulator.add_evaluator_results([result]) == [result]
    assert emulator.evaluator_results() == [result]
    with client_for(emulator) as http:
        path = "/v2/traces/t/spans/s/annotation"
        assert http.post(path, json={"annotations": [fix("E1", ["b"])]}).status_code == 200
        refused = http.post(path, json={"annotations": [fix("E1", "c")]})
        assert refused.json()["message"] == "Invalid value: c. Valid options are: a, b."
    assert emulator.corrections("t", "s")[0]["value"] == ["b"]


def test_results_added_in_python_may_be_tuples(make_emulator: MakeEmulator):
    emulator = make_emulator()
    result = {"id": "E1", "trace_id": "t", "span_id": "s", "output": "categorical"}
    emulator.add_evaluator_results(({**result, "options": ("a", "b")},))
    assert emulator.evaluator_results() == [{**result, "options": ["a", "b"]}]


@pytest.mark.parametrize(
    ("results", "message"),
    [
        ("E1", "evaluator_results must be a list of evaluator results"),
        (["E1"], "evaluator_results[0]: an evaluator result must be a mapping"),
        (
            [{"id": "E1", "trace_id": "t", "span_id": "s"}],
            "evaluator_results[0]: an evaluator result needs `output`",
        ),
        (
            [{"id": "E1", "trace_id": "t", "span_id": "s", "output": "score"}],
            'evaluator_results[0].output: unknown output "score"',
        ),
        (
            [{"id": "E1", "trace_id": "t", "span_id": "s", "output": "string", "x": 1}],
            'evaluator_results[0].x: an evaluator result has no field "x"',
        ),
        (
            [{"id": "E1", "trace_id": 7, "span_id": "s", "output": "string"}],
            "evaluator_results[0].trace_id: `trace_id` must be non-empty text",
        ),
        (
            [
                {
                    "id": "E1",
                    "trace_id": "t",
                    "span_id": "s",
                    "output": "categorical",
                    "options": ["a", 1],
                }
            ],
            "evaluator_results[0].options[1]: an option must be non-empty text",
        ),
        (
            [{"id": "E1", "trace_id": "t", "span_id": "s", "output": "string", "options": ["a"]}],
            "evaluator_results[0].options: a string result takes no options",
        ),
        (
            [
                {"id": "E1", "trace_id": "t", "span_id": "s", "output": "string"},
                {"id": "E1", "trace_id": "t", "span_id": "s", "output": "number"},
            ],
            'evaluator_results[1].id: duplicate id "E1" (also evaluator_results[0])',
        ),
        (
            [
                {"id": "E2", "trace_id": "t", "span_id": "s", "output": "string"},
                {"id": BOOLEAN_EVAL, "trace_id": "t", "span_id": "s", "output": "boolean"},
            ],
            f'evaluator_results[1].id: evaluator result "{BOOLEAN_EVAL}" is already known',
        ),
    ],
)
def test_bad_results_added_in_python_raise_and_add_none(
    emulator: Emulator, results: object, message: str
):
    with pytest.raises(EvaluationsError) as raised:
        emulator.add_evaluator_results(results)  # type: ignore[arg-type]
    assert str(raised.value) == message
    assert raised.value.hint
    assert len(emulator.evaluator_results()) == 6


# --- the /_emulator/ routes ------------------------------------------------------------------


def test_the_seed_route_adds_results_and_the_list_route_shows_them(make_emulator: MakeEmulator):
    emulator = make_emulator()
    result = {"id": "E1", "trace_id": "t", "span_id": "s", "output": "boolean"}
    with client_for(emulator, api_key=None) as http:
        assert http.get("/_emulator/evaluator-results").json() == {"evaluator_results": []}
        response = http.post("/_emulator/evaluator-results", json={"evaluator_results": [result]})
        assert response.status_code == 200
        assert response.json() == {"evaluator_results": [result]}
        assert http.get("/_emulator/evaluator-results").json() == {"evaluator_results": [result]}
        again = http.post("/_emulator/evaluator-results", json={"evaluator_results": [result]})
        assert again.status_code == 400
        assert again.json() == {
            "message": 'evaluator_results[0].id: evaluator result "E1" is already known; '
            "use another id, or POST /_emulator/reset to drop the results added at run time"
        }


USAGE = 'send {"evaluator_results": [{"id": ..., "trace_id": ..., "span_id": ..., "output": ...}]}'


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", f'the body must be an object with only "evaluator_results"; {USAGE}'),
        (b"[]", f'the body must be an object with only "evaluator_results"; {USAGE}'),
        (
            b'{"evaluator_results": [], "more": 1}',
            f'the body must be an object with only "evaluator_results"; {USAGE}',
        ),
        (
            b'{"evaluator_results": {}}',
            f"evaluator_results must be a list of evaluator results; {USAGE}",
        ),
        (
            b'{"evaluator_results": [{"id": "E1", "trace_id": "t", "span_id": "s", "output": 1}]}',
            "evaluator_results[0].output: `output` must be text; "
            "use one of boolean, number, categorical, string",
        ),
    ],
)
def test_the_seed_route_refuses_a_bad_body_with_400(
    client: httpx.Client, emulator: Emulator, content: bytes, message: str
):
    response = client.post("/_emulator/evaluator-results", content=content)
    assert response.status_code == 400
    assert response.json() == {"message": message}
    assert len(emulator.evaluator_results()) == 6


def test_the_seed_route_refuses_json_that_does_not_parse(client: httpx.Client):
    response = client.post("/_emulator/evaluator-results", content=b"{nope")
    assert response.status_code == 400
    message = response.json()["message"]
    assert message.startswith("Request body is not valid JSON: ")
    assert message.endswith(USAGE)


def test_the_evaluator_results_route_takes_get_and_post_only(client: httpx.Client):
    response = client.delete("/_emulator/evaluator-results")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"
    corrections = client.post("/_emulator/corrections")
    assert corrections.status_code == 405
    assert corrections.headers["Allow"] == "GET"


def test_the_corrections_route_lists_and_filters(client: httpx.Client, emulator: Emulator):
    annotate(client, fix(STRING_EVAL, "s"), fix(BOOLEAN_EVAL, True), metadata={"identity_id": "u"})
    client.post(
        f"/v2/traces/{TRACE}/spans/{OTHER_SPAN}/annotation",
        json={"annotations": [fix(ELSEWHERE_EVAL, False, explanation="no")]},
    )
    with client_for(emulator, api_key=None) as anonymous:
        rows = anonymous.get("/_emulator/corrections").json()["corrections"]
    assert [(row["span_id"], row["parent_annotation_id"]) for row in rows] == [
        (SPAN, BOOLEAN_EVAL),
        (SPAN, STRING_EVAL),
        (OTHER_SPAN, ELSEWHERE_EVAL),
    ]
    by_span = client.get(
        "/_emulator/corrections", params={"trace_id": TRACE, "span_id": OTHER_SPAN}
    ).json()
    assert by_span == {
        "corrections": [
            {
                "trace_id": TRACE,
                "span_id": OTHER_SPAN,
                "parent_annotation_id": ELSEWHERE_EVAL,
                "value": False,
                "explanation": "no",
                "metadata": {},
            }
        ]
    }
    assert client.get("/_emulator/corrections", params={"trace_id": "none"}).json() == {
        "corrections": []
    }


def test_the_span_view_and_stats_show_corrections(client: httpx.Client):
    annotate(client, {"key": "rating", "value": "good"}, fix(NUMBER_EVAL, 2, explanation="x"))
    assert client.get(f"/_emulator/spans/{TRACE}/{SPAN}").json() == {
        "annotations": {"rating": "good"},
        "metadata": {"rating": {}},
        "corrections": {NUMBER_EVAL: {"value": 2, "explanation": "x"}},
    }
    stats = client.get("/_emulator/stats").json()
    assert (stats["annotations"], stats["corrections"], stats["feedback"]) == (1, 1, 0)
    assert stats["by_status"] == {"200": 1}
