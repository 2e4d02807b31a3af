"""`orqsync validate`: every file checked offline."""

from __future__ import annotations

from orqsync.source.desired import DesiredState, load_desired
from orqsync.source.project import Settings


def validate(settings: Settings) -> DesiredState:
    """Every file checked offline; raises ProblemsError with all problems."""
    return load_desired(settings)
