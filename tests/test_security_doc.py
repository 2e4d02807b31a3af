"""SECURITY.md names a test for each mitigation: each one must exist (a test renamed or removed
makes the table wrong, and this fails)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
DOC = ROOT / "SECURITY.md"


def test_every_test_the_threat_model_names_exists() -> None:
    text = DOC.read_text(encoding="utf-8")
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", text)
    cases = re.findall(r"`tests/corpus/(\w+)`", text)
    assert len(named) >= 15 and len(cases) >= 8
    functions: dict[str, set[str]] = {}
    for path, name in named:
        if path not in functions:
            tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
            functions[path] = {
                node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
            }
        assert name in functions[path], f"{path}::{name}"
    for case in cases:
        assert (ROOT / "tests" / "corpus" / case / "expected.txt").is_file(), case
