"""`orqsync validate`: every file checked offline."""

from __future__ import annotations

from orqsync.errors import ProblemsError
from orqsync.source.definitions import load_definitions
from orqsync.source.desired import DesiredState, load_desired
from orqsync.source.project import Settings
from orqsync.source.queues import Queues, load_queues


def validate(settings: Settings) -> tuple[DesiredState, Queues]:
    """Every file checked offline (annotation files, then queue files); raises ProblemsError
    with all problems of both."""
    try:
        desired = load_desired(settings)
    except ProblemsError as exc:
        definitions, broken = load_definitions(
            settings.definitions_path, settings.display(settings.definitions_path)
        )
        if broken:
            raise
        queue_problems = list(load_queues(settings, definitions).problems)
        raise ProblemsError(exc.problems + queue_problems, exc.warnings) from None
    definitions, _ = load_definitions(
        settings.definitions_path, settings.display(settings.definitions_path)
    )
    queues = load_queues(settings, definitions)
    if queues.problems:
        raise ProblemsError(list(queues.problems), desired.warnings)
    return desired, queues
