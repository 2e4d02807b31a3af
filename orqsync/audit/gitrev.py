"""The git questions orqsync asks: where the repository is, which commits touched the state
file, and what that file held at a revision.

Every call runs `git` as a subprocess in the repository; a failure becomes an OrqsyncError
with a hint, never a CalledProcessError. Reading a file at many revisions goes through one
`git cat-file --batch` process, one object at a time, so memory holds one revision at once.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, TypeVar

from orqsync.errors import OrqsyncError

K = TypeVar("K")
REGULAR = (b"100644", b"100755")  # a tree's modes of regular files (120000 is a link)

TIMEOUT = 60  # seconds for one short git command; reading blobs streams without a limit

_NO_GIT_HINT = "install git (blame and export --at read the state's history from git)"


@dataclass(frozen=True, slots=True)
class Commit:
    """A commit that touched a file: full sha, author and author date (UTC, ISO 8601)."""

    sha: str
    author: str  # "Name <email>"
    date: str

    @property
    def short(self) -> str:
        return self.sha[:7]


def _run(
    root: str, *args: str, ok_codes: tuple[int, ...] = (0,)
) -> subprocess.CompletedProcess[bytes]:
    try:
        done = subprocess.run(
            ["git", "-C", root, *args],
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise OrqsyncError("git is not installed (or not on PATH)", _NO_GIT_HINT) from None
    except subprocess.TimeoutExpired:
        raise OrqsyncError(
            f"git {args[0]} took more than {TIMEOUT} seconds in {root}",
            "check the repository (git fsck), then try again",
        ) from None
    except OSError as exc:
        raise OrqsyncError(f"cannot run git: {exc.strerror}", _NO_GIT_HINT) from None
    if done.returncode not in ok_codes:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise OrqsyncError(
            f"git {' '.join(args[:2])} failed in {root}: "
            f"{message[-1] if message else f'exit {done.returncode}'}",
            "check that the directory is a healthy git repository (git status)",
        )
    return done


def toplevel(directory: str) -> str | None:
    """The root of the git work tree holding `directory`, or None outside any repository."""
    probe = directory
    while not os.path.isdir(probe):  # the state directory may not exist yet
        parent = os.path.dirname(probe)
        if parent == probe:
            return None
        probe = parent
    try:
        done = subprocess.run(
            ["git", "-C", probe, "rev-parse", "--show-toplevel"],
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None  # no git: callers say that history needs git
    if done.returncode != 0:
        return None
    return os.path.realpath(done.stdout.decode("utf-8").strip())


def relative(root: str, path: str) -> str:
    """`path` relative to the repository root, with forward slashes, as git names it."""
    rel = os.path.relpath(os.path.realpath(path), os.path.realpath(root))
    if rel == ".." or rel.startswith(".." + os.sep):
        raise OrqsyncError(
            f"{path} is outside the git repository at {root}",
            "keep the state file inside the repository so that git records its history",
        )
    return rel.replace(os.sep, "/")


def resolve(root: str, rev: str) -> str:
    """The full sha of the commit `rev` names (a sha, branch, tag, HEAD~2...)."""
    if rev.startswith("-"):
        raise OrqsyncError(f"{rev!r} is not a revision", "give a commit sha, branch or tag")
    done = _run(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", ok_codes=(0, 1))
    sha = done.stdout.decode("utf-8").strip()
    if done.returncode != 0 or not sha:
        raise OrqsyncError(
            f"unknown revision {rev!r} in the git repository at {root}",
            "give a commit sha, branch or tag (see `git log --oneline`)",
        )
    return sha


def head(root: str) -> str | None:
    """The full sha of HEAD, or None before the first commit."""
    done = _run(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", ok_codes=(0, 1))
    sha = done.stdout.decode("utf-8").strip()
    return sha if done.returncode == 0 and sha else None


def log_path(root: str, path: str, rev: str = "HEAD") -> list[Commit]:
    """Commits reachable from `rev` that changed `path`, newest first (parents after
    children)."""
    if head(root) is None:
        return []
    done = _run(
        root,
        "log",
        "--topo-order",
        "--no-color",
        "--format=%H%x00%an%x00%ae%x00%aI",
        rev,
        "--",
        path,
    )
    commits = []
    for line in done.stdout.decode("utf-8", "replace").splitlines():
        parts = line.split("\x00")
        if len(parts) == 4:
            sha, name, email, date = parts
            commits.append(Commit(sha, f"{name} <{email}>" if email else name, _utc(date)))
    return commits


def _utc(date: str) -> str:
    """git's ISO 8601 author date in UTC, as orqsync writes times: 2026-11-23T10:00:00Z."""
    try:
        moment = datetime.datetime.fromisoformat(date)
    except ValueError:
        return date
    return moment.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def show(root: str, rev: str, path: str) -> bytes | None:
    """The bytes of `path` at `rev`, or None when the file does not exist there."""
    for _, data in iter_show(root, [rev], path):
        return data
    return None  # pragma: no cover - iter_show yields once per revision


def iter_show(root: str, revs: Iterable[str], path: str) -> Iterator[tuple[str, bytes | None]]:
    """(rev, bytes of `path` at rev, or None when absent) for each rev, through one process."""
    return _cat(root, ((rev, f"{rev}:{path}") for rev in revs))


def _cat(root: str, objects: Iterable[tuple[K, str]]) -> Iterator[tuple[K, bytes | None]]:
    """(key, the blob an object name names, or None when there is none) for each (key,
    name), through one `git cat-file --batch`."""
    try:
        process = subprocess.Popen(
            ["git", "-C", root, "cat-file", "--batch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except FileNotFoundError:
        raise OrqsyncError("git is not installed (or not on PATH)", _NO_GIT_HINT) from None
    assert process.stdin is not None and process.stdout is not None
    try:
        for key, name in objects:
            # git reads one object name per line; a path with a newline cannot be named
            try:
                process.stdin.write(f"{name}\n".encode())
                process.stdin.flush()
            except BrokenPipeError:
                pass  # git exited; the empty header below says so
            header = process.stdout.readline().decode("utf-8", "replace").rstrip("\n")
            if not header:  # git exited: not a repository, or a broken one
                _close(process.stdin)
                process.wait()
                assert process.stderr is not None
                said = process.stderr.read().decode("utf-8", "replace").strip().splitlines()
                raise OrqsyncError(
                    f"git cat-file stopped while reading {name}"
                    + (f": {said[-1]}" if said else ""),
                    "check the repository (git fsck), then try again",
                )
            fields = header.split(" ")
            if len(fields) == 3 and fields[1] == "blob":
                size = int(fields[2])
                data = _read_exactly(process.stdout, size)
                process.stdout.read(1)  # the newline after each object
                yield key, data
            else:  # "<name> missing", "<name> ambiguous", or a tree at that path
                yield key, None
    finally:
        _close(process.stdin)
        process.stdout.close()
        process.wait()
        if process.stderr is not None:
            process.stderr.close()


def _close(stream: IO[bytes]) -> None:
    with contextlib.suppress(BrokenPipeError):
        stream.close()


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    chunks = []
    left = size
    while left:
        chunk = stream.read(min(left, 1 << 20))
        if not chunk:
            raise OrqsyncError(
                "git cat-file ended in the middle of an object",
                "check the repository (git fsck), then try again",
            )
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def holds(root: str, rev: str, path: str) -> bool:
    """Whether commit `rev` has `path` (a file or a folder; "" or ".": the root)."""
    if not path or path == ".":
        return True
    done = _run(root, "cat-file", "-e", f"{rev}:{path}", ok_codes=(0, 1, 128))
    return done.returncode == 0


def extract(root: str, rev: str, path: str, dest: str) -> int:
    """Write the files under `path` (relative to the repository root; "" for all) as commit
    `rev` holds them into `dest`, at their paths relative to the root; how many were
    written. Only regular files are written (no links, no submodules), and only inside
    `dest`. Read from the tree itself (ls-tree, cat-file), not `git archive`, whose
    .gitattributes (export-ignore, export-subst) would leave files out or change them."""
    # the folder is a path, not a pattern (a folder named ":x" or "*")
    args = ["--literal-pathspecs", "ls-tree", "-r", "-z", "--full-tree", rev]
    if path and path != ".":
        args += ["--", path]
    listed = _run(root, *args, ok_codes=(0, 128))
    if listed.returncode != 0:
        said = listed.stderr.decode("utf-8", "replace").strip().splitlines()
        raise OrqsyncError(
            f"git ls-tree {rev[:12]} failed in {root}: {said[-1] if said else 'exit 128'}",
            "check that the revision is in this clone (fetch it, or a deeper history)",
        )
    blobs = []
    for record in listed.stdout.split(b"\0"):
        meta, tab, raw = record.partition(b"\t")
        fields = meta.split(b" ")
        if tab and len(fields) == 3 and fields[0] in REGULAR and fields[1] == b"blob":
            blobs.append((os.fsdecode(raw), fields[2].decode("ascii")))
    top = os.path.realpath(dest)
    written = 0
    for name, data in _cat(root, blobs):
        target = os.path.realpath(os.path.join(top, name))
        if data is None or not target.startswith(top + os.sep):
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as handle:
            handle.write(data)
        written += 1
    return written
