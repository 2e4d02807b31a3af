"""The bad-input corpus (tests/corpus/): one folder per case, the files of a project and
`expected.txt`. Shared by the tests that read it (test_bad_inputs, test_fastpath)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from conftest import Project

CORPUS = Path(__file__).parent / "corpus"
CASES = sorted(path.name for path in CORPUS.iterdir() if path.is_dir())


def project_of(case: str, make_project: Callable[..., Project]) -> Project:
    """The standard project with the case's files written over it, byte for byte."""
    project = make_project()
    shutil.copytree(
        CORPUS / case,
        project.root,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("expected.txt"),
    )
    return project
