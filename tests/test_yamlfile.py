"""Strict YAML reading: nesting is reported by orqsync, whatever PyYAML's own limits are.

PyYAML's limits differ between releases and between its two loaders: libyaml as bundled by
PyYAML 6.0.4 refuses 1,000 levels with words of its own, earlier releases compose any depth,
and the pure-Python composer runs out of stack at a few hundred. Each test runs with both
loaders, so the message stays orqsync's on every PyYAML a user may have.
"""

from __future__ import annotations

import pytest
import yaml

from orqsync.source import yamlfile

LOADERS = [yaml.SafeLoader] + ([yaml.CSafeLoader] if hasattr(yaml, "CSafeLoader") else [])
TOO_DEEP = (
    "lists and mappings are nested too deeply (hint: write the value with fewer levels of nesting)"
)


@pytest.fixture(params=LOADERS, ids=lambda loader: loader.__name__)
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> type:
    monkeypatch.setattr(yamlfile, "Loader", request.param)
    return request.param


def problems_of(text: str) -> list[str]:
    doc = yamlfile.parse(text, "f.yaml")
    if doc.root is not None:
        yamlfile.to_python(doc, doc.root)
    return [problem.render() for problem in doc.problems]


def flow(depth: int) -> str:
    return "spans:\n  - value: " + "[" * depth + "]" * depth + "\n"


def block(depth: int) -> str:
    return "".join("  " * level + "-\n" for level in range(depth)) + "  " * depth + "- x\n"


@pytest.mark.parametrize("depth", [100, 999, 1000, 5000])
def test_deep_flow_lists_are_reported_where_the_value_starts(loader: type, depth: int) -> None:
    assert problems_of(flow(depth)) == [f"f.yaml:2:12: {TOO_DEEP}"]


@pytest.mark.parametrize("depth", [100, 1200])
def test_deep_block_lists_are_reported_at_the_first_level_too_many(
    loader: type, depth: int
) -> None:
    line = yamlfile.MAX_DEPTH + 1
    assert problems_of(block(depth)) == [f"f.yaml:{line}:{2 * yamlfile.MAX_DEPTH + 1}: {TOO_DEEP}"]


def test_nesting_up_to_the_limit_is_read(loader: type) -> None:
    # The document's mapping, the spans list and its item take three of the levels.
    doc = yamlfile.parse(flow(yamlfile.MAX_DEPTH - 3), "f.yaml")
    value = yamlfile.to_python(doc, doc.root)
    assert doc.problems == []
    assert isinstance(value, dict)
    assert problems_of(flow(yamlfile.MAX_DEPTH - 2)) == [f"f.yaml:2:12: {TOO_DEEP}"]


def test_a_syntax_error_before_deep_nesting_is_reported_as_such(loader: type) -> None:
    text = "spans: [a, b\nkey: : value\n" + flow(2000)
    [problem] = problems_of(text)
    assert problem.startswith("f.yaml:2:")
    assert "invalid YAML" in problem


def test_a_syntax_error_in_a_shallow_file_keeps_its_own_message(loader: type) -> None:
    # libyaml and the pure-Python parser word this one differently; the place is the same.
    [problem] = problems_of("a: [1, 2\n")
    assert problem.startswith("f.yaml:2:1: invalid YAML: ")
    assert problem.endswith(
        "(while parsing a flow sequence that starts at line 1, column 4) "
        "(hint: fix the YAML syntax here)"
    )


def test_a_plain_merge_sign_as_a_value_is_text_and_as_a_key_is_refused(loader: type) -> None:
    doc = yamlfile.parse("a: <<\nb: [<<, '<<']\n", "f.yaml")
    assert yamlfile.to_python(doc, doc.root) == {"a": "<<", "b": ["<<", "<<"]}
    assert doc.problems == []
    assert problems_of("base: &b {x: 1}\nc:\n  <<: *b\n") == [
        "f.yaml:3:3: YAML merge keys (<<) are not supported (hint: write the fields out in full)"
    ]
