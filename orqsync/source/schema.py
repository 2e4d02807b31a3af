"""JSON Schema checks of the user's files, with every error placed at its line and column."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import jsonschema
from jsonschema.exceptions import ValidationError

from orqsync.errors import Problem
from orqsync.source.yamlfile import Document, key_node_at, node_at, position

SCHEMAS = ("orqsync", "definitions", "annotations", "queue")


@cache
def validator(name: str) -> jsonschema.protocols.Validator:
    """The compiled validator of `schemas/<name>.schema.json`."""
    text = resources.files("orqsync.schemas").joinpath(f"{name}.schema.json").read_text("utf-8")
    schema = json.loads(text)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def check(doc: Document, data: object, name: str) -> list[Problem]:
    """Every schema violation of `data` (converted from `doc`) as a located problem."""
    problems = [_problem(doc, error) for error in _leaves(validator(name).iter_errors(data))]
    return sorted(problems, key=Problem.sort_key)


def _leaves(errors: object) -> list[ValidationError]:
    """The most specific errors: anyOf/oneOf are replaced by their best branch."""
    found: list[ValidationError] = []
    for error in errors:  # type: ignore[attr-defined]
        if error.validator in ("anyOf", "oneOf") and error.context:
            if _one_of_fields(error):
                found.append(error)  # "this field or that one": said as such (_problem)
            else:
                found.append(jsonschema.exceptions.best_match(error.context))
        elif error.validator in ("if", "allOf") and error.context:
            found.extend(_leaves(error.context))
        else:
            found.append(error)
    return found


def _one_of_fields(error: ValidationError) -> bool:
    """An anyOf whose branches each only require a field: one of them must be there."""
    return error.validator == "anyOf" and all(
        set(option) == {"required"} for option in error.validator_value
    )


_IDS = frozenset(("trace_id", "span_id", "id"))
_HINTS = {
    "annotations": 'write each annotation as key: value, without "- "',
    "spans": 'start each span with "- "',
    "feedback": 'start each record with "- "',
    "trace_id": "write a single id",
    "span_id": "write a single id",
    "id": "write a single id",
    "sources": 'write a list of patterns, e.g. ["annotations/**/*.yaml"]',
    "options": "list the options the definition has in orq.ai",
    "identityId": "write a single value",
    "identity_id": "write a single value",
    "reviewerId": "write a single value",
    "source": "write a single value",
}


# What a value checked by a schema "pattern" should be, and what to write instead.
_FORMS = {
    "base_url": (
        "an http(s) URL with a host, or embedded",
        "write https://api.orq.ai (or another http:// or https:// address), or embedded for "
        "the built-in emulator",
    ),
    "api_key_env": (
        "the name of an environment variable",
        "use letters, digits and _, not starting with a digit, e.g. ORQ_API_KEY",
    ),
    "id": (
        "an orq.ai id (a ULID: 26 characters, digits and capitals but I, L, O and U)",
        "copy the id from orq.ai, or leave the field out",
    ),
    # a queue's name in the repository (queue.schema.json)
    "name": (
        "a queue name (lowercase letters, digits, . _ and -, at most 64)",
        "e.g. needs-second-look; the name reviewers see goes in display_name",
    ),
    "renamed_from": (
        "a queue name (lowercase letters, digits, . _ and -, at most 64)",
        "write the name the queue had in the repository",
    ),
}


def _expected(types: object) -> str:
    kinds = set(types) if isinstance(types, list) else {types}
    if "string" in kinds:
        return "text or a number" if "number" in kinds else "text"
    for kind, words in (
        ("array", "a list"),
        ("object", "a mapping"),
        ("integer", "an integer"),
        ("number", "a number"),
        ("boolean", "true or false"),
    ):
        if kind in kinds:
            return words
    return " or ".join(sorted(str(k) for k in kinds))


def _got(instance: object, container_expected: bool) -> str:
    if isinstance(instance, list):
        return "a list"
    if isinstance(instance, dict):
        return "a mapping"
    if instance is None:
        return "an empty value"
    if isinstance(instance, str):
        return "text" if container_expected else f'"{instance}"'
    return json.dumps(instance)


def _type_message(where: str, path: tuple[object, ...], error: ValidationError) -> tuple[str, str]:
    field = str(path[-1]) if path else ""
    # An id may look like a number (it is taken as written), but it is text to the user.
    expected = "text" if field in _IDS else _expected(error.validator_value)
    got = _got(error.instance, expected in ("a list", "a mapping"))
    hint = _HINTS.get(field, "")
    if not hint and expected == "an integer":
        low, high = error.schema.get("minimum"), error.schema.get("maximum")
        hint = (
            f"write a whole number from {low} to {high}"
            if low is not None and high is not None
            else "write a whole number"
        )
    elif not hint and isinstance(error.instance, int) and expected == "text":
        hint = "quote the value to keep it as text"
    return f"{where}: expected {expected}, got {got}", hint


_BOUNDS = {
    "minimum": "at least",
    "exclusiveMinimum": "more than",
    "maximum": "at most",
    "exclusiveMaximum": "less than",
}


def _bound_message(where: str, error: ValidationError) -> tuple[str, str]:
    """`api.parallelism: 0 is out of range: it must be at least 1`, and what to write."""
    schema = error.schema
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    whole = schema.get("type") == "integer"
    kind = "a whole number" if whole else "a number"
    if low is not None and high is not None:
        hint = f"write {kind} from {low} to {high}"
    elif low is not None:
        above = "above" if "exclusiveMinimum" in schema else "of at least"
        hint = f"write {kind} {above} {low}"
    else:
        hint = f"write {kind} of at most {high}"
    if "null" in (schema.get("type") or []):
        hint += ", or null"
    words = _BOUNDS[str(error.validator)]
    return (
        f"{where}: {json.dumps(error.instance)} is out of range: it must be {words} "
        f"{error.validator_value}",
        hint,
    )


def _problem(doc: Document, error: ValidationError) -> Problem:
    path = tuple(error.absolute_path)
    where = ".".join(str(step) for step in path) or "the file"
    node = node_at(doc.root, path)
    hint = ""
    if error.validator == "additionalProperties":
        extra = [key for key in error.instance if key not in error.schema.get("properties", {})]
        if extra:
            node = key_node_at(doc.root, path, str(extra[0]))
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        message = f"unknown field {', '.join(repr(k) for k in extra)} in {where}"
        hint = f"allowed fields: {allowed}" if allowed else "remove it"
    elif error.validator == "required":
        message = f"{where}: {error.message}"
        hint = "add the missing field"
    elif _one_of_fields(error):
        names = [repr(option["required"][0]) for option in error.validator_value]
        message = f"{where}: {' or '.join(names)} is required"
        hint = "add the missing field"
    elif error.validator == "const" and path and path[-1] == "version":
        message = f"unsupported version {error.instance!r}"
        hint = "this orqsync reads version: 1"
    elif error.validator == "type":
        message, hint = _type_message(where, path, error)
    elif error.validator == "minItems" and error.instance == []:
        message = f"{where}: must not be empty"
        hint = _HINTS.get(str(path[-1]) if path else "", "add at least one item")
    elif error.validator in _BOUNDS:
        message, hint = _bound_message(where, error)
    elif error.validator == "minLength" and error.instance == "":
        message, hint = f"{where}: must not be empty", "write a value, or remove the field"
    elif error.validator == "maxLength":
        message = f"{where}: longer than {error.validator_value} characters"
        hint = f"shorten it to {error.validator_value} characters or fewer"
    elif error.validator == "pattern":
        form, hint = _FORMS.get(str(path[-1]) if path else "", ("the expected form", ""))
        message = f"{where}: {_got(error.instance, False)} is not {form}"
    elif error.validator == "enum":
        choices = ", ".join(str(v) for v in error.validator_value)
        message = f"{where}: {json.dumps(error.instance)} is not one of the allowed values"
        hint = f"use one of: {choices}"
    else:
        message = f"{where}: {error.message}"
    line, column = position(node)
    return Problem(doc.path, line, column, message, hint)
