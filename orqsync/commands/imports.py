"""`orqsync import FILE`: the labels of an export (or rows of trace_id, span_id, key, value)
declared in a YAML file and adopted into the state, under the state lock, sending nothing.

Reading and checking the rows and writing their YAML is audit/adopt.py's; this module is the
transaction: check everything, write the file, read it back as a plan would, record the
labels in the state and the apply history, and undo the file if any step fails.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from orqsync.audit.adopt import (
    DEFAULT_OUT,
    Imported,
    ImportProblemsError,
    check_rows,
    conflicts,
    detect_format,
    read_rows,
    render_yaml,
)
from orqsync.audit.history import COMPLETE, Counts, Entry, append_entry, history_path, utc_now
from orqsync.errors import OrqsyncError, ProblemsError
from orqsync.model import Metadata, Value, same_value
from orqsync.source.definitions import load_definitions
from orqsync.source.desired import DesiredState, find_sources, glob_files, load_desired
from orqsync.source.project import PROJECT_FILE, Settings
from orqsync.state.disk import atomic_write
from orqsync.state.files import StateFile
from orqsync.state.lock import state_lock
from orqsync.state.model import Provenance, State
from orqsync.state.provenance import capture

Label = tuple[str, str, str]  # (trace_id, span_id, key)


@dataclass(frozen=True, slots=True)
class _Declaration:
    """What the --out file is to hold, and what it held before (None: it did not exist)."""

    labels: dict[Label, Value]
    metadata: dict[Label, Metadata]
    content: bytes
    previous: bytes | None


def import_labels(
    settings: Settings,
    path: str,
    *,
    fmt: str | None = None,
    out: str = DEFAULT_OUT,
    force: bool = False,
    commit: str = "",
    author: str = "",
    environ: Mapping[str, str] | None = None,
) -> Imported:
    """Adopt the labels of `path` into the YAML and the state; all problems or nothing."""
    fmt = detect_format(path, fmt)
    out_path = _out_path(settings, out)
    replacing = os.path.exists(out_path)
    definitions, problems = load_definitions(
        settings.definitions_path, settings.display(settings.definitions_path)
    )
    if problems:
        raise ProblemsError(problems)
    rows, problems, raw = read_rows(path, path, fmt, definitions)
    labels, found = check_rows(rows, path, settings, definitions)
    problems += found
    plan_id = "import-" + hashlib.sha256(raw).hexdigest()[:12]
    files = StateFile.of(settings)
    with state_lock(settings.state_path, "import", environ):
        declared = (
            load_desired(settings)
            if any(p != out_path or not replacing for p in find_sources(settings))
            else DesiredState({}, {})
        )
        state = files.load()
        out_display = settings.display(out_path)
        found, in_yaml, in_state = conflicts(
            labels, path, declared, out_display if replacing else "", state.spans
        )
        problems += found
        if problems:
            raise ImportProblemsError(problems)
        if not rows:
            raise OrqsyncError(f"{path}: no labels to import", "the file has no rows")
        values = {label: row.value for label, row in labels.items()}
        metadata = {
            label: row.metadata for label, row in labels.items() if row.metadata is not None
        }
        declaration = _declaration(
            settings, path, out_path, values, metadata, in_yaml, replacing, force
        )
        to_adopt = [label for label in labels if label not in in_state]
        if not declaration.labels and not to_adopt:
            return Imported("", 0, 0, len(labels), plan_id)
        serial_before = state.serial
        with _undone_on_failure(out_path, declaration):
            provenance = capture(settings.root, plan_id, environ, commit=commit, author=author)
            _write(settings, out, out_path, declaration, state, to_adopt, provenance)
            if to_adopt:
                files.write(state)
        if to_adopt:
            _record(settings, _entry(provenance, state, serial_before, len(to_adopt)))
    return Imported(
        out_display if declaration.labels else "",
        len(declaration.labels),
        len(to_adopt),
        len(labels) - len(set(to_adopt) | set(declaration.labels)),
        plan_id,
    )


def _out_path(settings: Settings, out: str) -> str:
    out_path = settings.path(out)
    protected = {settings.definitions_path, settings.path(PROJECT_FILE), settings.state_path}
    if out_path in protected or out_path.startswith(settings.state_path + "."):
        raise OrqsyncError(f"--out {out} is one of orqsync's own files", "choose another file")
    return out_path


def _declaration(
    settings: Settings,
    path: str,
    out_path: str,
    values: dict[Label, Value],
    metadata: dict[Label, Metadata],
    in_yaml: set[Label],
    replacing: bool,
    force: bool,
) -> _Declaration:
    """The labels the --out file declares. Its own declarations are replaced, so its labels are
    declared again; a file that would come out the same is left alone (importing twice
    changes nothing), and one that would change is replaced only with --force."""
    to_declare = {label: value for label, value in values.items() if label not in in_yaml}
    metadata = {label: found for label, found in metadata.items() if label in to_declare}
    content = (
        render_yaml(to_declare, path, metadata, settings.metadata).encode("utf-8")
        if to_declare
        else b""
    )
    previous = _read_bytes(out_path) if replacing else None
    if content == previous:
        in_yaml.update(to_declare)
        return _Declaration({}, metadata, content, previous)
    if to_declare and replacing and not force:
        raise OrqsyncError(
            f"{settings.display(out_path)} already exists",
            "pass --force to replace it, or choose another file with --out",
        )
    return _Declaration(to_declare, metadata, content, previous)


@contextlib.contextmanager
def _undone_on_failure(out_path: str, declaration: _Declaration) -> Iterator[None]:
    """The --out file as it was before, when anything in the block fails (Ctrl-C included)."""
    try:
        yield
    except BaseException:
        if declaration.labels:
            if declaration.previous is None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(out_path)
            else:
                atomic_write(out_path, declaration.previous)
        raise


def _write(
    settings: Settings,
    out: str,
    out_path: str,
    declaration: _Declaration,
    state: State,
    to_adopt: list[Label],
    provenance: Provenance,
) -> None:
    """Write the --out file, read the project back as a plan will, and put the labels to
    adopt into `state` with the values read back."""
    if declaration.labels:
        atomic_write(out_path, declaration.content)
        if out_path not in find_sources(settings):
            raise OrqsyncError(
                f"--out {out}: the file is not matched by sources "
                f"({', '.join(settings.sources)}) in {PROJECT_FILE}",
                f"write it where sources look, for example --out {DEFAULT_OUT}",
            )
        reviews = settings.reviews
        if reviews is not None and out_path not in glob_files(settings, reviews.adjudication):
            raise OrqsyncError(
                f"--out {out}: {PROJECT_FILE} has `reviews`, which read each annotation file "
                "as one reviewer's votes, and the imported labels are no reviewer's",
                "import them into an adjudication file (--out FILE where reviews.adjudication "
                "looks): what orq.ai holds then settles those keys until you remove it",
            )
    desired = load_desired(settings)  # the written file read as plan will read it
    _check_read_back(desired, declaration, settings.display(out_path))
    for trace_id, span_id, key in sorted(to_adopt):
        annotation = desired.spans[(trace_id, span_id)][key]
        # as an apply records a label: it leaves the span's record of removed keys
        state.set_keys(
            (trace_id, span_id), [(key, annotation.value)], annotation.metadata, provenance
        )


def _check_read_back(desired: DesiredState, declaration: _Declaration, display: str) -> None:
    """The written file gives back each label's value and metadata (else it is removed)."""
    for label, value in sorted(declaration.labels.items()):
        trace_id, span_id, key = label
        annotation = desired.spans.get((trace_id, span_id), {}).get(key)
        wanted = declaration.metadata.get(label)
        if (
            annotation is None
            or not same_value(annotation.value, value)
            or (wanted is not None and annotation.metadata != wanted)
        ):
            raise OrqsyncError(
                f'{display} did not read back as written: "{key}" of span {trace_id}/{span_id}',
                "nothing was imported; please report this as a bug of orqsync",
            )


def _entry(provenance: Provenance, state: State, serial_before: int, adopted: int) -> Entry:
    return Entry(
        time=utc_now(),
        operation="import",
        outcome=COMPLETE,
        who=provenance.author,
        commit=provenance.commit,
        plan_id=provenance.plan_id,
        lineage=state.lineage,
        serial_before=serial_before,
        serial_after=state.serial,
        counts=Counts(create=adopted),
        started=provenance.applied_at,
        run_url=provenance.run_url,
    )


def _record(settings: Settings, entry: Entry) -> None:
    path = history_path(settings.state_path)
    try:
        append_entry(path, entry)
    except OSError as exc:
        raise OrqsyncError(
            f"the labels were imported, but {settings.display(path)} could not be appended to "
            f"({exc.strerror})",
            "the YAML file and the state are written; check the disk",
        ) from None


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()
