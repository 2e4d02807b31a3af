"""`orqsync export`: the applied labels as a dataset (audit/export.py), to stdout or a file."""

from __future__ import annotations

from orqsync.audit.export import Export, export
from orqsync.source.project import Settings


def export_labels(
    settings: Settings,
    *,
    fmt: str,
    keys: tuple[str, ...],
    where: tuple[str, ...],
    at: str | None,
    out_path: str | None,
    votes: bool = False,
    raw: bool = False,
) -> Export:
    """The dataset, written to `out_path` when given (else the caller prints `data`)."""
    result = export(settings, fmt=fmt, keys=keys, where=where, at=at, votes=votes, raw=raw)
    if out_path:
        with open(out_path, "wb") as handle:
            handle.write(result.data)
    return result
