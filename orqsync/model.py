"""The types every stage shares: span ids, metadata, values, and the operations a plan sends.

They live here, below every package, so that a stage can name them without importing another
stage (source, state, planning and remote all speak of spans and values).
"""

from __future__ import annotations

import enum
from typing import NamedTuple

SpanId = tuple[str, str]  # (trace_id, span_id)
Metadata = tuple[tuple[str, str], ...]  # sorted (name, value) pairs; hashable and comparable
Value = str | int | float | bool | tuple[str, ...]  # canonical: a multi select is a sorted tuple


class Annotation(NamedTuple):
    """One desired (trace, span, key) value, the metadata to send with it, and where it is.

    A named tuple: a big repository holds hundreds of thousands, and tuples build fast.
    Both YAML readers (source/desired.py, source/fastpath.py) make them.
    """

    value: Value
    metadata: Metadata
    path: str
    line: int


class Operation(str, enum.Enum):
    """What one API request does. The values are what saved plans and the JSON plan write."""

    ANNOTATE = "annotate"  # set annotations on a span (create or replace, by key)
    REMOVE = "remove"  # delete annotations of a span, by key
    FEEDBACK_PUT = "feedback_put"  # the legacy Feedback API: create or replace a record
    FEEDBACK_REMOVE = "feedback_remove"  # the legacy Feedback API: remove a record

    def __str__(self) -> str:
        return self.value

    @property
    def journal_op(self) -> str:
        """The `op` of this operation's line in the journal: "set" for ANNOTATE (the name
        journals have always used, kept so that a journal left by an older release folds),
        the value for the others."""
        return "set" if self is Operation.ANNOTATE else self.value


def same_value(a: object, b: object) -> bool:
    """Canonical equality that never confuses True with 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b
