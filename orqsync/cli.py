"""The command line: parse flags, call one work function, render the result.

This is the one module that talks to the terminal and the one error boundary: an OrqsyncError
becomes its message and exit code; anything else is a bug and keeps its traceback.

Each command imports the modules it works with when it runs, so that `orqsync --version`,
`--help` and the light commands start without loading YAML, JSON Schema and HTTP.
"""

from __future__ import annotations

import collections
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from orqsync import __version__, process
from orqsync.errors import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_PARTIAL,
    OrqsyncError,
    Problem,
    ProblemsError,
)
from orqsync.text import plural

if TYPE_CHECKING:
    from orqsync.commands.plan import Planned
    from orqsync.planning.plan import Plan, Request
    from orqsync.remote.apply import Failure, Report
    from orqsync.source.project import Settings
    from orqsync.state.model import State


def _settings(ctx: click.Context) -> Settings:
    """The project that the folder (-C, else the current one) is in: the nearest orqsync.yaml
    there or above (project.find_project). ctx.obj["directory"] becomes that project's folder
    before orqsync.yaml is read, so that what names paths relative to the project (validate
    --format github) places them right, the problems of orqsync.yaml included."""
    from orqsync.source.project import find_project, load_project

    ctx.obj["directory"] = root = find_project(ctx.obj["directory"])
    return load_project(root)


def _out(text: str) -> None:
    click.echo(text, nl=False)


def _err(text: str) -> None:
    click.echo(text, err=True)


class ProgressReporter:
    """A live line on a terminal; a line every 10% (or 30 s) in CI logs.

    Each line: requests done, refused, the pace, and the time left at that pace: the pace
    measured over the last seconds once there is one, before that the rate the pacer holds
    to (a fixed requests_per_minute, or the server's X-RateLimit-Limit). Refusals are counted
    here and listed once, grouped, in the summary at the end.
    """

    MEASURED_OVER = 10.0  # seconds of finished requests that the measured pace comes from

    def __init__(self, interactive: bool, rate: Callable[[], float | None] = lambda: None):
        self.interactive = interactive
        self.rate = rate
        self.start = time.monotonic()
        self.last_print = 0.0
        self.last_decile = -1
        self.refused = 0
        self.finished: collections.deque[tuple[float, int]] = collections.deque()

    def started(self, total: int) -> None:
        from orqsync.text import duration_text

        self.start = time.monotonic()
        self.finished.append((self.start, 0))
        rate = self.rate()
        at = f" at up to {rate:.3g} a second, about {duration_text(total / rate)}" if rate else ""
        _err(f"Applying {plural(total, 'request')}{at}...")

    def finished_request(self, request: Request, done: int, total: int) -> None:
        self._progress(done, total)

    def failed_request(self, failure: Failure) -> None:
        self.refused += 1

    def _progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        self.finished.append((now, done))
        while len(self.finished) > 2 and now - self.finished[1][0] >= self.MEASURED_OVER:
            self.finished.popleft()
        if self.interactive:
            if now - self.last_print >= 0.1 or done == total:
                self.last_print = now
                line = self._line(now, done, total).ljust(72)
                click.echo("\r" + line, err=True, nl=done == total)
            return
        decile = done * 10 // max(total, 1)
        if decile != self.last_decile or now - self.last_print >= 30:
            self.last_decile = decile
            self.last_print = now
            _err(self._line(now, done, total))

    def _pace(self, now: float) -> float | None:
        """Requests a second: measured once a few seconds of them are in, else the pacer's."""
        first_time, first_done = self.finished[0]
        last_time, last_done = self.finished[-1]
        if last_time - first_time >= 2.0 and last_done > first_done:
            return (last_done - first_done) / (last_time - first_time)
        return self.rate()

    def _line(self, now: float, done: int, total: int) -> str:
        from orqsync.text import duration_text

        parts = [f"{done:,}/{total:,} requests ({done * 100 // max(total, 1)}%)"]
        if self.refused:
            parts.append(f"{self.refused:,} refused")
        pace = self._pace(now)
        if pace:
            parts.append(f"{pace:.3g} a second")
        left = total - done - self.refused
        if left <= 0:
            parts.append("done")
        elif pace:
            parts.append(f"about {duration_text(left / pace)} left")
        return ", ".join(parts)

    def note(self, text: str) -> None:
        _err(text)


class OrqsyncGroup(click.Group):
    """Keeps usage errors (exit 1) apart from `--detailed-exitcode`'s 2."""

    def main(  # type: ignore[override]  # always exits: click's overloads say so differently
        self, args: Sequence[str] | None = None, prog_name: str | None = None, **extra: Any
    ) -> NoReturn:
        try:
            code = super().main(args=args, prog_name=prog_name, standalone_mode=False, **extra)
        except click.ClickException as exc:
            # In orqsync's voice, like every other error: what is wrong, then what to do.
            ctx: click.Context | None = getattr(exc, "ctx", None)  # usage errors have one
            command = ctx.command_path if ctx is not None else "orqsync"
            _err(f"error: {exc.format_message()}\n  hint: see `{command} --help`")
            sys.exit(EXIT_ERROR)
        except click.exceptions.Abort:
            _err("Aborted.")
            sys.exit(EXIT_ERROR)
        except OrqsyncError as exc:
            _err(("" if isinstance(exc, ProblemsError) else "error: ") + exc.render())
            sys.exit(exc.exit_code)
        sys.exit(code if isinstance(code, int) else EXIT_OK)


@click.group(cls=OrqsyncGroup)
@click.version_option(__version__, prog_name="orqsync")
@click.option(
    "-C",
    "directory",
    default=".",
    type=click.Path(file_okay=False),
    help="Run as if started in DIR. orqsync.yaml is looked for there, then in the folders "
    "above it (init writes in DIR itself).",
)
@click.pass_context
def cli(ctx: click.Context, directory: str) -> None:
    """GitOps for human annotations on orq.ai traces."""
    ctx.obj = {"directory": directory}


@cli.command()
@click.option("--embedded", is_flag=True, help="Use the built-in emulator instead of orq.ai.")
@click.option(
    "--github",
    is_flag=True,
    help="Also write the GitHub workflows (plan, apply, reassert) and the orqsync action they "
    "use; in an existing project, only those.",
)
@click.option(
    "--force", is_flag=True, help="Overwrite files that exist (a .gitignore is only added to)."
)
@click.pass_context
def init(ctx: click.Context, embedded: bool, github: bool, force: bool) -> int:
    """Create orqsync.yaml, definitions.yaml and an example annotation file."""
    from orqsync.commands.init import write_scaffold

    directory = ctx.obj["directory"]  # here, never the project of a folder above (no discovery)
    written = write_scaffold(directory, embedded=embedded, force=force, github=github)
    gitignore = os.path.join(directory, ".gitignore")
    for path in written:
        if path == gitignore and written.gitignore_added:
            _err(f"added to {path}: {', '.join(written.gitignore_added)}")
        else:
            _err(f"wrote {path}")
    if written.gitignore_added == []:
        _err(f"{gitignore} already has every line orqsync needs")
    if written.github_only:
        _err("The project was there already: only the GitHub files were written, for its state.")
    else:
        _err("Next: edit annotations/example.yaml, then run `orqsync plan`.")
    if github:
        _err("For the workflows: add the repository secret ORQ_API_KEY (Settings > Secrets).")
    return EXIT_OK


@cli.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="github: workflow commands, so problems show on the pull request's lines.",
)
@click.pass_context
def validate(ctx: click.Context, fmt: str) -> int:
    """Check every file against the schemas and definitions, offline."""
    from orqsync.commands.validate import validate as run_validate
    from orqsync.review import render
    from orqsync.review.github import escape_data, problems_github, project_prefix

    try:
        desired, queues = run_validate(_settings(ctx))
        process.keep_until_exit(desired)
    except ProblemsError as exc:
        if fmt == "json":
            _out(render.problems_json(exc.problems, exc.warnings))
            return EXIT_ERROR
        if fmt == "github":
            found = exc.problems + exc.warnings
            _out(problems_github(found, project_prefix(ctx.obj["directory"])))
            return EXIT_ERROR
        raise
    except OrqsyncError as exc:
        if fmt == "github":
            _out(f"::error title=orqsync::{escape_data(exc.render())}\n")
        raise
    if fmt == "json":
        _out(render.problems_json([], desired.warnings))
    else:
        if fmt == "github":
            _out(problems_github(desired.warnings, project_prefix(ctx.obj["directory"])))
        else:
            _warn(desired.warnings)
        _out(
            f"Valid: {plural(len(desired.files), 'file', grouped=False)}, "
            f"{_labels(desired.annotation_count, desired.correction_count)} on "
            f"{plural(len(desired.spans), 'span', grouped=False)}, "
            f"{plural(len(desired.feedback), 'feedback record', grouped=False)}"
            + (
                f", {plural(len(queues.queues), 'annotation queue', grouped=False)}"
                if queues.queues
                else ""
            )
            + ".\n"
        )
    return EXIT_OK


def _labels(count: int, corrections: int) -> str:
    """`12 annotations`, or `10 annotations and 2 corrections` when there are corrections."""
    annotations = plural(count - corrections, "annotation", grouped=False)
    if not corrections:
        return annotations
    return f"{annotations} and {plural(corrections, 'correction', grouped=False)}"


def _plan_warnings(planned: Planned, settings: Settings, redact: bool) -> list[Problem]:
    """The plan's warnings, those of keys not resolved as the plan lists them (the files it
    read, and the plan cache's); with `redact`, a text key's votes as their lengths."""
    from orqsync.commands.common import text_keys
    from orqsync.source.reviews import UNRESOLVED

    if not planned.plan.unresolved:
        return list(planned.warnings)
    hidden = text_keys(settings) if redact else frozenset()
    kept = [warning for warning in planned.warnings if warning.kind != UNRESOLVED]
    return kept + [item.problem(item.key in hidden) for item in planned.plan.unresolved]


def _warn(warnings: list[Problem]) -> None:
    """Values read leniently (source/values.py): said on stderr, never silently."""
    if warnings:
        from orqsync.review import render

        click.echo(render.warnings_text(warnings), err=True, nl=False)


_Command = TypeVar("_Command", bound="Callable[..., Any] | click.Command")


def _plan_options(command: _Command) -> _Command:
    command = click.option(
        "--target", multiple=True, help="Only TRACE/SPAN, TRACE or feedback/ID (wildcards ok)."
    )(command)
    return click.option(
        "--exclude", multiple=True, help="Leave out TRACE/SPAN, TRACE or feedback/ID."
    )(command)


_FORMATS = click.Choice(["text", "json", "markdown"])
_REDACT = click.option(
    "--redact",
    is_flag=True,
    help="With --format markdown: leave the values of text keys out of the comment.",
)


_REASSERT = click.option(
    "--reassert",
    is_flag=True,
    help="Self-heal: send the state's labels again and delete the keys orqsync removed, "
    "oldest spans first (for edits made in orq.ai, which a plan cannot see).",
)


def _check_redact(redact: bool, fmt: str) -> None:
    if redact and fmt != "markdown":
        raise click.UsageError("--redact goes with --format markdown (the pull-request comment)")


@cli.command()
@click.option("--out", "out_path", type=click.Path(dir_okay=False), help="Save the plan here.")
@click.option("--format", "fmt", type=_FORMATS, default="text", show_default=True)
@_REDACT
@click.option(
    "--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes, 0 when none."
)
@_REASSERT
@click.option(
    "--max-requests",
    type=click.IntRange(min=1),
    help="With --reassert: only the oldest spans whose requests fit in N.",
)
@click.option(
    "--base",
    "base_rev",
    metavar="REV",
    help="With reviews: show how the changes move agreement between reviewers from this git "
    "revision (in a pull-request job, HEAD^1: the base of GitHub's merge commit).",
)
@_plan_options
@click.pass_context
def plan(
    ctx: click.Context,
    out_path: str | None,
    fmt: str,
    redact: bool,
    detailed_exitcode: bool,
    reassert: bool,
    max_requests: int | None,
    base_rev: str | None,
    target: tuple[str, ...],
    exclude: tuple[str, ...],
) -> int:
    """Show the changes and the exact requests apply would send. Sends nothing."""
    from orqsync.commands.plan import plan as run_plan

    _check_redact(redact, fmt)
    settings = _settings(ctx)
    if reassert:
        if out_path or fmt == "markdown" or target or exclude:
            raise click.UsageError(
                "--reassert shows a reassertion as text or json; it is not saved, commented "
                "or targeted: `apply --reassert` plans and applies it in one step"
            )
        return _show_reassertion(settings, fmt, max_requests, detailed_exitcode)
    if max_requests is not None:
        raise click.UsageError("--max-requests goes with plan --reassert, or with apply")
    planned = run_plan(settings, target, exclude, base_rev=base_rev)
    process.keep_until_exit(planned)
    _warn(_plan_warnings(planned, settings, redact))
    if out_path or fmt == "json":
        document = planned.document(settings.metadata_style)
    if out_path:
        with open(out_path, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=1, ensure_ascii=False)
            handle.write("\n")
    if fmt == "json":
        _out(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    elif fmt == "markdown":
        hint = f"The full plan: `{out_path}`." if out_path else "Run `orqsync plan --out FILE`."
        _out(_markdown(planned.plan, planned.whole_state(), settings, redact, hint))
    else:
        _write_plan_text(planned.plan, settings)
        if planned.left_out is not None:
            from orqsync.review.render import selection_text

            _out(selection_text(planned.left_out))
        if out_path:
            _out(f"Saved the plan to {out_path}; run `orqsync apply {out_path}` to apply it.\n")
    if detailed_exitcode and not planned.plan.empty:
        return EXIT_CHANGES
    return EXIT_OK


def _show_reassertion(
    settings: Settings, fmt: str, max_requests: int | None, detailed_exitcode: bool
) -> int:
    from orqsync.commands.reassert import plan_reassertion, reassertion_document
    from orqsync.review.render import render_reassertion

    reassertion, planned = plan_reassertion(settings, max_requests)
    if fmt == "json":
        document = reassertion_document(reassertion, planned, settings.metadata_style)
        _out(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    else:
        _out(render_reassertion(reassertion, settings.metadata_style))
    if detailed_exitcode and reassertion.plan.requests:
        return EXIT_CHANGES
    return EXIT_OK


def _markdown(
    the_plan: Plan, before: State, settings: Settings, redact: bool, full_plan_hint: str
) -> str:
    from orqsync.commands.common import text_keys
    from orqsync.review.markdown import render_plan_markdown

    return render_plan_markdown(
        the_plan,
        before,
        text_keys=text_keys(settings) if redact else frozenset(),
        redact=redact,
        max_removals=settings.max_removals,
        full_plan_hint=full_plan_hint,
    )


def _write_plan_text(the_plan: Plan, settings: Settings) -> None:
    """The text plan, written as it is rendered (a big plan is never held whole)."""
    from orqsync.review import render

    pieces = render.iter_plan_text(
        the_plan,
        metadata_style=settings.metadata_style,
        requests_per_minute=settings.requests_per_minute,
        max_removals=settings.max_removals,
    )
    batch: list[str] = []
    size = 0
    for piece in pieces:
        batch.append(piece)
        size += len(piece)
        if size > 1 << 20:
            _out("".join(batch))
            batch, size = [], 0
    _out("".join(batch))


def _confirm(auto_approve: bool) -> None:
    if auto_approve:
        return
    if not sys.stdin.isatty():
        raise OrqsyncError(
            "refusing to apply without confirmation: standard input is not a terminal",
            "pass --auto-approve (as in CI), or review a saved plan and apply that file",
        )
    answer = click.prompt(
        "Do you want to apply these changes? Only 'yes' will be accepted",
        default="",
        show_default=False,
    )
    if answer != "yes":
        raise OrqsyncError("apply cancelled")


def _finish(report: Report, settings: Settings, command: str = "apply") -> int:
    from orqsync.review import render

    if report.halt is not None:
        # One message: why nothing more could be sent, and what was recorded before.
        halt = report.halt
        if report.failures:
            _out("\n".join(render.render_refusals(report.failures)) + "\n")
        halt.message += f". {render.halt_progress(report)}"
        raise halt
    _out(render.render_report(report, command))
    if settings.embedded:
        _err("(api.base_url is embedded: the requests went to the built-in emulator, not orq.ai)")
    return EXIT_OK if report.complete else EXIT_PARTIAL


@cli.command()
@click.argument("plan_file", required=False, type=click.Path(dir_okay=False))
@click.option("--auto-approve", is_flag=True, help="Apply without asking (for CI).")
@click.option("--allow-removals", is_flag=True, help="Allow more removals than the budget.")
@click.option("--max-requests", type=click.IntRange(min=1), help="Stop after N requests.")
@click.option("--max-duration", type=click.FloatRange(min=0), help="Stop after SECONDS.")
@click.option("--commit", default="", help="Commit to record as provenance (default: git HEAD).")
@click.option("--author", default="", help="Author to record (default: git or CI).")
@_REASSERT
@_plan_options
@click.pass_context
def apply(
    ctx: click.Context,
    plan_file: str | None,
    auto_approve: bool,
    allow_removals: bool,
    max_requests: int | None,
    max_duration: float | None,
    commit: str,
    author: str,
    reassert: bool,
    target: tuple[str, ...],
    exclude: tuple[str, ...],
) -> int:
    """Apply a saved plan, or plan now and apply after confirmation."""
    if reassert:
        if plan_file or target or exclude or allow_removals:
            raise click.UsageError(
                "--reassert sends the whole state again, oldest spans first: it takes no "
                "saved plan, --target, --exclude or --allow-removals (use --max-requests)"
            )
        settings = _settings(ctx)
        return _reassert(settings, auto_approve, max_requests, max_duration, commit, author)
    from orqsync.commands.apply import apply as run_apply
    from orqsync.commands.apply import apply_lock, check_budget
    from orqsync.commands.plan import as_saved, load_saved
    from orqsync.commands.plan import plan as run_plan
    from orqsync.remote.client import api_key, make_client

    settings = _settings(ctx)
    saved = None
    if plan_file:
        if target or exclude:
            raise click.UsageError("--target/--exclude go with plan, not with a saved plan")
        saved = load_saved(settings, plan_file)
    # The key and the lock first, as Terraform does: nothing is shown of a plan that could
    # not be applied, and the state cannot move between the plan and its apply.
    api_key(settings)
    with apply_lock(settings):
        if saved is None:
            fresh = run_plan(settings, target, exclude)
            _warn(list(fresh.warnings))
            to_apply = as_saved(fresh, settings.metadata_style)
            label = "the plan"
            _write_plan_text(to_apply.plan, settings)
            if fresh.left_out is not None:
                from orqsync.review.render import selection_text

                _out(selection_text(fresh.left_out))
            if to_apply.plan.empty:
                return EXIT_OK
            check_budget(to_apply.plan, settings, allow_removals)
            _confirm(auto_approve)
        else:
            to_apply, label = saved, plan_file or ""
            if to_apply.plan.empty:
                _out("No changes in the saved plan.\n")
                return EXIT_OK
        process.long_running()  # a long run of network objects
        with make_client(settings) as client:
            reporter = ProgressReporter(interactive=sys.stderr.isatty(), rate=client.pacer.rate)
            report = run_apply(
                settings,
                to_apply,
                client,
                plan_label=label,
                reporter=reporter,
                allow_removals=allow_removals,
                max_requests=max_requests,
                max_duration=max_duration,
                commit=commit,
                author=author,
                lock_held=True,
            )
    return _finish(report, settings)


def _reassert(
    settings: Settings,
    auto_approve: bool,
    max_requests: int | None,
    max_duration: float | None,
    commit: str,
    author: str,
) -> int:
    from orqsync.commands.apply import apply_lock
    from orqsync.commands.reassert import plan_reassertion, reassert
    from orqsync.remote.client import api_key, make_client
    from orqsync.review.render import render_reassertion

    api_key(settings)
    with apply_lock(settings):
        reassertion, planned = plan_reassertion(settings, max_requests)
        _out(render_reassertion(reassertion, settings.metadata_style))
        if not reassertion.plan.requests:
            return EXIT_OK
        _confirm(auto_approve)
        process.long_running()
        with make_client(settings) as client:
            reporter = ProgressReporter(interactive=sys.stderr.isatty(), rate=client.pacer.rate)
            report = reassert(
                settings,
                reassertion,
                planned,
                client,
                reporter=reporter,
                max_duration=max_duration,
                commit=commit,
                author=author,
                lock_held=True,
            )
    return _finish(report, settings, "apply --reassert")


@cli.command()
@click.argument("plan_file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=_FORMATS, default="text", show_default=True)
@_REDACT
@click.pass_context
def show(ctx: click.Context, plan_file: str, fmt: str, redact: bool) -> int:
    """Render a saved plan (markdown: against the project's current state)."""
    from orqsync.planning.planfile import load_plan
    from orqsync.review import render
    from orqsync.state.files import StateFile

    _check_redact(redact, fmt)
    saved = load_plan(plan_file)
    if fmt == "json":
        with open(plan_file, encoding="utf-8") as handle:
            _out(handle.read())
        return EXIT_OK
    if fmt == "markdown":
        settings = _settings(ctx)
        hint = f"The full plan is `{plan_file}` (in CI, the `orqsync-plan` artifact)."
        current = StateFile.of(settings).load()
        _out(_markdown(saved.plan, current, settings, redact, hint))
        return EXIT_OK
    _out(f"Plan {saved.plan_id} (state serial {saved.base.serial}):\n")
    _out(render.render_plan_text(saved.plan, metadata_style=saved.metadata_style))
    return EXIT_OK


@cli.group()
def state() -> None:
    """Inspect and edit the state file."""


def _span_arg(text: str) -> tuple[str, str]:
    trace_id, sep, span_id = text.partition("/")
    if not sep or not trace_id or not span_id:
        raise click.BadParameter(f"{text!r} is not TRACE_ID/SPAN_ID")
    return trace_id, span_id


@state.command("list")
@click.option(
    "--oldest",
    type=click.IntRange(min=1),
    help="Only the N spans a reassertion would send first, with when each last was.",
)
@click.pass_context
def state_list(ctx: click.Context, oldest: int | None) -> int:
    """One line per span: TRACE/SPAN and its keys."""
    from orqsync.commands.state import current, least_recently_asserted

    if oldest is not None:
        for span, when, names in least_recently_asserted(_settings(ctx), oldest):
            _out(f"{'/'.join(span)}  {when or 'never asserted'}  {', '.join(names)}\n")
        return EXIT_OK
    held = current(_settings(ctx))
    for (trace_id, span_id), keys in sorted(held.spans.items()):
        _out(f"{trace_id}/{span_id}  {', '.join(sorted(keys))}\n")
    for record_id, record in sorted(held.feedback.items()):
        _out(f"feedback/{record_id}  {record.get('property')}\n")
    return EXIT_OK


@state.command("show")
@click.argument("span")
@click.pass_context
def state_show(ctx: click.Context, span: str) -> int:
    """Values, metadata and provenance of one TRACE/SPAN."""
    from orqsync.commands.state import span_keys
    from orqsync.review import render

    keys, reviews = span_keys(_settings(ctx), _span_arg(span))
    for key in sorted(keys):
        applied = keys[key]
        _out(f"{render.key_text(key)} = {render.value_text(applied.value, limit=10_000)}\n")
        if applied.metadata:
            _out(f"    metadata: {render.metadata_text(applied.metadata)}\n")
        if key in reviews:
            _out(f"    review: {render.review_text(reviews[key])}\n")
        for name, value in applied.provenance.to_json().items():
            _out(f"    {name}: {value}\n")
    return EXIT_OK


@state.command("rm")
@click.argument("span")
@click.argument("keys", nargs=-1)
@click.pass_context
def state_rm(ctx: click.Context, span: str, keys: tuple[str, ...]) -> int:
    """Forget a span (or some of its KEYS) without sending anything to orq.ai."""
    from orqsync.commands.state import forget

    settings = _settings(ctx)
    removed = forget(settings, _span_arg(span), keys)
    _err(
        f"Removed {span}{' ' + ', '.join(keys) if keys else ''} from the state ({removed} "
        "labels; nothing sent). The apply history records it."
    )
    return EXIT_OK


@state.command("blame")
@click.argument("span")
@click.argument("key", required=False)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.pass_context
def state_blame(ctx: click.Context, span: str, key: str | None, fmt: str) -> int:
    """Who decided each label of TRACE/SPAN (or KEY), in which commit and apply, and what it
    was before: from the state file's git history and the working copy."""
    from orqsync.audit.blame import blame_json, render_blame_text
    from orqsync.commands.state import blame

    result = blame(_settings(ctx), _span_arg(span), key)
    if fmt == "json":
        _out(json.dumps(blame_json(result), indent=1, ensure_ascii=False) + "\n")
    else:
        _out(render_blame_text(result))
    if result.note:
        _err(f"note: {result.note}")
    return EXIT_OK


@state.command("history")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option("-n", "limit", type=click.IntRange(min=1), help="Only the last N entries.")
@click.pass_context
def state_history(ctx: click.Context, fmt: str, limit: int | None) -> int:
    """The applies and imports recorded beside the state, newest first."""
    from orqsync.audit.history import render_history_text
    from orqsync.commands.state import history

    shown, found = history(_settings(ctx), limit)
    entries = list(found.entries)
    for number in found.unreadable:
        _err(f"warning: {shown}:{number}: unreadable line, skipped")
    if fmt == "json":
        _out(json.dumps([e.to_json() for e in entries], indent=1, ensure_ascii=False) + "\n")
    elif entries:
        _out(render_history_text(entries))
    else:
        _err(f"No applies recorded in {shown} yet.")
    return EXIT_OK


@cli.group()
def queue() -> None:
    """Annotation queues: review progress, read back from orq.ai."""


@queue.command("status")
@click.argument("name", required=False)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.pass_context
def queue_status(ctx: click.Context, name: str | None, fmt: str) -> int:
    """Each declared queue's items (with their ids, the cursors), how many spans have been
    reviewed with which definitions, and the spans git routes to it that it lacks or holds
    without git routing them."""
    from orqsync.commands.queues import queue_status as read_status
    from orqsync.commands.queues import status_json, status_text
    from orqsync.remote.client import make_client

    settings = _settings(ctx)
    with make_client(settings) as client:
        statuses = read_status(settings, client, name)
    if fmt == "json":
        _out(json.dumps(status_json(statuses), indent=1) + "\n")
    else:
        _out(status_text(statuses))
    return EXIT_OK


@queue.command("forget")
@click.argument("name")
@click.pass_context
def queue_forget(ctx: click.Context, name: str) -> int:
    """Drop the state's record of queue NAME, sending nothing: for a queue deleted in
    orq.ai, which the next apply then creates again (its file still declares it)."""
    from orqsync.commands.queues import forget

    record = forget(_settings(ctx), name)
    shown = record.id or "create not confirmed"
    _out(f"Forgot the annotation queue {name} ({shown}); nothing was sent.\n")
    if record.unconfirmed:
        _err(
            f"warning: a create sent at {record.attempted or 'an unknown time'} may have made "
            f'the queue "{record.display_name}" in orq.ai; the next apply will not look for it: '
            "delete it there, or adopt it with `id:` in its file\n"
        )
    return EXIT_OK


@cli.command("agreement")
@click.option("--key", "keys", multiple=True, help="Only this key (repeatable).")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.pass_context
def agreement_command(ctx: click.Context, keys: tuple[str, ...], fmt: str) -> int:
    """How far the reviewers agree, key by key: observed agreement, Krippendorff's alpha
    (nominal, interval or MASI, by the key's type) and, for two reviewers, Cohen's kappa."""
    from orqsync.commands.agreement import agreement_json, agreement_text, key_agreement

    figures = key_agreement(_settings(ctx), keys)
    if fmt == "json":
        _out(json.dumps(agreement_json(figures), indent=1) + "\n")
    else:
        _out(agreement_text(figures))
    return EXIT_OK


@cli.command("export")
@click.option(
    "--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True
)
@click.option("--key", "keys", multiple=True, help="Only this key (repeatable).")
@click.option(
    "--where", multiple=True, help="Only spans whose KEY=VALUE (repeatable; all must hold)."
)
@click.option("--at", "rev", help="The labels as applied at this git revision.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), help="Write here, not stdout.")
@click.option(
    "--votes",
    is_flag=True,
    help="With each label resolved from reviewers' votes, its rule and every vote.",
)
@click.option(
    "--raw",
    is_flag=True,
    help="CSV: write cells as they are; by default a cell a spreadsheet would run as a "
    "formula (=, +, -, @, tab, CR) gets a leading ' (import strips it).",
)
@click.pass_context
def export_command(
    ctx: click.Context,
    fmt: str,
    keys: tuple[str, ...],
    where: tuple[str, ...],
    rev: str | None,
    out_path: str | None,
    votes: bool,
    raw: bool,
) -> int:
    """The applied labels as a dataset: one row per span, with provenance and a manifest."""
    from orqsync.commands.export import export_labels

    if raw and fmt != "csv":
        raise click.UsageError("--raw goes with --format csv (JSONL is written as it is)")
    result = export_labels(
        _settings(ctx),
        fmt=fmt,
        keys=keys,
        where=where,
        at=rev,
        out_path=out_path,
        votes=votes,
        raw=raw,
    )
    if out_path:
        commit = str(result.manifest["commit"])
        _err(
            f"Wrote {plural(result.rows, 'row', grouped=False)} to {out_path}"
            + (f" (labels as of commit {commit[:7]})." if commit else ".")
        )
    else:
        click.echo(result.data, nl=False)
    if result.manifest["dirty"]:
        _err(
            "warning: the state differs from the last commit (or is not in git): the manifest "
            "names no commit; commit the state, or export --at REV, for a reproducible dataset"
        )
    return EXIT_OK


@cli.command("report")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="The folder to write index.html into (made if missing).",
)
@click.option("--at", "rev", help="The report as of this git revision.")
@click.pass_context
def report_command(ctx: click.Context, out_dir: str, rev: str | None) -> int:
    """The applied label set as a static HTML page (inline SVG charts, no script): labels
    per key, reviewers and their agreement, the apply history, growth over commits."""
    from orqsync.audit.report import build, render_html

    settings = _settings(ctx)
    page = render_html(build(settings, rev), os.path.basename(settings.root), rev)
    path = os.path.join(out_dir, "index.html")
    try:
        os.makedirs(out_dir, exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(page)
    except OSError as exc:
        raise OrqsyncError(
            f"cannot write {exc.filename or path}: {exc.strerror or exc}",
            "pass --out a folder that can be created or written to",
        ) from None
    _err(f"Wrote {path}.")
    return EXIT_OK


@cli.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), help="Default: by extension.")
@click.option(
    "--out", help="YAML file to write, project-relative (default: annotations/imported.yaml)."
)
@click.option("--force", is_flag=True, help="Replace the --out file if it exists.")
@click.option("--commit", default="", help="Commit to record as provenance (default: git HEAD).")
@click.option("--author", default="", help="Author to record (default: git or CI).")
@click.pass_context
def import_command(
    ctx: click.Context,
    file: str,
    fmt: str | None,
    out: str | None,
    force: bool,
    commit: str,
    author: str,
) -> int:
    """Adopt labels that already exist in orq.ai (rows of trace_id, span_id, key, value) into
    a YAML file and the state, without sending any request."""
    from orqsync.audit.adopt import DEFAULT_OUT
    from orqsync.commands.imports import import_labels

    done = import_labels(
        _settings(ctx),
        file,
        fmt=fmt,
        out=out or DEFAULT_OUT,
        force=force,
        commit=commit,
        author=author,
    )
    total = done.declared + done.adopted + done.unchanged
    if not done.declared and not done.adopted:
        _out(f"Nothing to import: the {total} labels are already declared and in the state.\n")
        return EXIT_OK
    parts = []
    if done.declared:
        parts.append(f"declared {done.declared} in {done.out}")
    if done.adopted:
        parts.append(f"added {done.adopted} to the state as {done.plan_id}")
    _out(f"Imported {file}: {', '.join(parts)}. Nothing was sent to orq.ai.\n")
    _err("Next: commit the YAML file and the state; `orqsync plan` shows no change for them.")
    return EXIT_OK


@cli.command("unlock")
@click.argument("lock_id")
@click.pass_context
def unlock_command(ctx: click.Context, lock_id: str) -> int:
    """Release a stuck state lock (the id is in the error of the blocked command)."""
    from orqsync.commands.state import unlock

    holder = unlock(_settings(ctx), lock_id)
    _err(f"Released the lock {holder.id} ({holder.who} on {holder.host}, {holder.operation}).")
    return EXIT_OK


def _finite(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """A float option's check that click's FloatRange lacks: nan and inf pass its bounds."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number.", ctx, param)
    return value


@cli.group()
def emulator() -> None:
    """The built-in orq.ai emulator."""


def _loopback(host: str) -> bool:
    """Whether `host` names this machine only (localhost, 127.0.0.0/8, ::1)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to any address


@emulator.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on; 0 picks a free one (the listening line says which).",
)
@click.option(
    "--definitions",
    type=click.Path(dir_okay=False, exists=True),
    help="A definitions.yaml; without it, orq.ai's built-in rating and defects.",
)
@click.option(
    "--evaluations",
    type=click.Path(dir_okay=False, exists=True),
    help="A file of evaluator results (id, trace_id, span_id, output) that corrections may "
    "correct; without it, none (a correction is answered 404).",
)
@click.option("--db", default=":memory:", show_default=True, help="SQLite file, or :memory:.")
@click.option(
    "--api-key",
    "api_keys",
    multiple=True,
    help="A bearer key to accept (repeat for several); on loopback the default is "
    "emulator-key, on any other address one must be given.",
)
@click.option(
    "--string-limit",
    default=200,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Longest string value accepted.",
)
@click.option("--seed", default=0, show_default=True, help="Seed of the fault injection.")
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0, min_open=True),
    callback=_finite,
    help="Requests per minute a token bucket admits; others get 429 with Retry-After and "
    "X-RateLimit-* headers.",
)
@click.option(
    "--rate-limit-burst",
    type=click.FloatRange(min=1),
    callback=_finite,
    help="Depth of that bucket: requests admitted at once (default: a minute's worth).",
)
@click.option(
    "--error-rate",
    default=0.0,
    type=click.FloatRange(0, 1),
    callback=_finite,
    help="Share of requests answered 500, 502 or 503.",
)
@click.option(
    "--burst-429-rate",
    default=0.0,
    type=click.FloatRange(0, 1),
    callback=_finite,
    help="Share of requests answered 429 with Retry-After: 1 at random, whatever the rate.",
)
@click.option(
    "--drop-rate",
    default=0.0,
    type=click.FloatRange(0, 1),
    callback=_finite,
    help="Share of connections closed without an answer (half after the write).",
)
@click.option(
    "--latency-ms",
    default=0.0,
    type=click.FloatRange(min=0),
    callback=_finite,
    help="Added to every answer.",
)
def emulator_serve(
    host: str,
    port: int,
    definitions: str | None,
    evaluations: str | None,
    db: str,
    api_keys: tuple[str, ...],
    string_limit: int,
    seed: int,
    rate_limit: float | None,
    rate_limit_burst: float | None,
    error_rate: float,
    burst_429_rate: float,
    drop_rate: float,
    latency_ms: float,
) -> int:
    """Serve the emulator until interrupted (on loopback unless --host says otherwise)."""
    beyond = not _loopback(host)
    if beyond and not api_keys:
        raise OrqsyncError(
            f"--host {host} listens beyond this machine, and without --api-key the "
            "emulator would accept its well-known default key emulator-key",
            "give --api-key KEY (a secret of your own), or listen on 127.0.0.1; the "
            "emulator is a test tool, not orq.ai",
        )

    def ready(url: str) -> None:
        if beyond:
            _err(
                f"warning: the emulator listens on {url}, beyond this machine: it is a test "
                "tool (no TLS, data in memory or a local file), not a service"
            )

    api_keys = api_keys or ("emulator-key",)
    process.long_running()
    from orqsync.emulator import (
        DefinitionsError,
        EmulatorConfig,
        FaultConfig,
        ListenError,
        StoreError,
        serve,
    )

    config = EmulatorConfig(
        api_keys=api_keys,
        definitions_path=definitions,
        evaluations_path=evaluations,
        string_limit=string_limit,
        db_path=db,
        faults=FaultConfig(
            seed=seed,
            rate_limit_per_minute=rate_limit,
            rate_limit_burst=rate_limit_burst,
            burst_429_rate=burst_429_rate,
            error_rate=error_rate,
            latency_ms=latency_ms,
            drop_rate=drop_rate,
        ),
    )
    try:
        serve(config, host, port, ready)
    except DefinitionsError as exc:
        raise OrqsyncError(str(exc), exc.hint or "fix the definitions file") from None
    except StoreError as exc:
        hints = {
            "no_folder": "create the folder first, or pass --db :memory:",
            "is_folder": "name a file inside it, for example --db emulator.db",
            "not_database": "name a new file; the emulator makes the database itself",
        }
        raise OrqsyncError(str(exc), hints.get(exc.reason, "name another --db file")) from None
    except ListenError as exc:
        hints = {
            "in_use": f"stop what listens on port {exc.port}, or pass --port 0 for a free port",
            "unknown_host": "pass an IP address such as 127.0.0.1 (the default)",
            "not_local": "pass an address of this machine, such as 127.0.0.1 (the default)",
            "denied": "pass a port above 1023, or --port 0 for a free one",
        }
        raise OrqsyncError(
            str(exc), hints.get(exc.reason, "pass another --host or --port")
        ) from None
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> None:
    process.short_lived()
    try:
        cli.main(args=argv, prog_name="orqsync")
    except SystemExit as exc:
        process.end(exc)
