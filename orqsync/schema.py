"""JSON Schema checks of the user's files, with every error placed at its line and column."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import jsonschema
from jsonschema.exceptions import ValidationError

from orqsync.errors import Problem
from orqsync.yamlfile import Document, key_node_at, node_at, position

SCHEMAS = ("orqsync", "definitions", "annotations")


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
            found.append(jsonschema.exceptions.best_match(error.context))
        elif error.validator in ("if", "allOf") and error.context:
            found.extend(_leaves(error.context))
        else:
            found.append(error)
    return found


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
    elif error.validator == "const" and path and path[-1] == "version":
        message = f"unsupported version {error.instance!r}"
        hint = "this orqsync reads version: 1"
    elif (
        error.validator == "type"
        and isinstance(error.instance, int)
        and "string" in str(error.validator_value)
    ):
        message = f"{where}: {error.message}"
        hint = "quote the value to keep it as text"
    elif error.validator == "enum":
        choices = ", ".join(str(v) for v in error.validator_value)
        message = f"{where}: {error.instance!r} is not one of the allowed values"
        hint = f"use one of: {choices}"
    else:
        message = f"{where}: {error.message}"
    line, column = position(node)
    return Problem(doc.path, line, column, message, hint)
