"""Helpers that several commands share."""

from __future__ import annotations

import hashlib

from orqsync.errors import ProblemsError
from orqsync.source.definitions import Definitions, load_definitions
from orqsync.source.project import PROJECT_FILE, Settings


def project_hash(settings: Settings) -> str:
    """The hash of orqsync.yaml as it is on disk: a saved plan names its project by it."""
    with open(settings.path(PROJECT_FILE), "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def load_definitions_or_fail(settings: Settings) -> Definitions:
    """The project's definitions; a ProblemsError when the file has any."""
    definitions, problems = load_definitions(
        settings.definitions_path, settings.display(settings.definitions_path)
    )
    if problems:
        raise ProblemsError(problems)
    return definitions


def text_keys(settings: Settings) -> frozenset[str]:
    """The keys whose definition type is free text (what `--redact` leaves out)."""
    definitions = load_definitions_or_fail(settings)
    return frozenset(key for key, definition in definitions.items() if definition.type == "text")
