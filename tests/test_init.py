"""`orqsync init`: the starter files, a .gitignore merged rather than refused, and always the
folder it is run in (or -C), never the project of a folder above."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from orqsync.cli import cli
from orqsync.commands.init import GITIGNORE, gitignore_lines, merge_gitignore, write_scaffold
from orqsync.errors import OrqsyncError

NEEDED = [
    ".orqsync/*.journal",
    ".orqsync/*.lock",
    ".orqsync/*.backup",
    ".orqsync/*.cache",
    ".orqsync/emulator.db*",
]
COMMENT = "# orqsync: the state file is committed; these are not"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stderr


def test_the_needed_lines_are_those_of_the_template():
    assert gitignore_lines() == NEEDED
    assert GITIGNORE.splitlines() == [COMMENT, *NEEDED]


def test_init_merges_an_existing_gitignore_once_with_or_without_force(tmp_path):
    # the user's lines, two of orqsync's among them, and no newline at the end
    mine = "node_modules/\n.orqsync/*.lock\n# build output\ndist/\n.orqsync/*.cache\n*.pyc"
    (tmp_path / ".gitignore").write_text(mine, encoding="utf-8")
    gitignore = os.path.join(str(tmp_path), ".gitignore")

    code, said = run("-C", str(tmp_path), "init", "--embedded")
    assert code == 0, said
    assert (
        f"added to {gitignore}: .orqsync/*.journal, .orqsync/*.backup, .orqsync/emulator.db*\n"
        in said
    )
    assert f"wrote {os.path.join(str(tmp_path), 'orqsync.yaml')}\n" in said
    merged = (tmp_path / ".gitignore").read_text(encoding="utf-8")
    assert merged == (
        mine + "\n" + COMMENT + "\n.orqsync/*.journal\n.orqsync/*.backup\n.orqsync/emulator.db*\n"
    )

    # again with --force: the other files are overwritten, the .gitignore is left as it is
    code, said = run("-C", str(tmp_path), "init", "--embedded", "--force")
    assert code == 0, said
    assert f"{gitignore} already has every line orqsync needs\n" in said
    assert f"wrote {gitignore}" not in said and "added to" not in said
    assert (tmp_path / ".gitignore").read_text(encoding="utf-8") == merged

    # again without --force: refused for the other files, the .gitignore untouched
    code, said = run("-C", str(tmp_path), "init")
    assert code == 1
    assert said == (
        f"error: orqsync.yaml, definitions.yaml, {os.path.join('annotations', 'example.yaml')} "
        f"already exist in {tmp_path}\n  hint: pass --force to overwrite them\n"
    )
    assert (tmp_path / ".gitignore").read_text(encoding="utf-8") == merged

    lines = merged.splitlines()
    for line in NEEDED:
        assert lines.count(line) == 1, line
    assert lines[:6] == mine.splitlines()  # the user's lines, in their order, first
    assert lines.count(COMMENT) == 1


def test_a_gitignore_alone_is_no_reason_to_refuse(tmp_path, monkeypatch):
    (tmp_path / ".gitignore").write_text("*.log\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    code, said = run("init")
    assert code == 0, said
    assert said.splitlines()[:4] == [
        f"wrote {os.path.join('.', 'orqsync.yaml')}",
        f"wrote {os.path.join('.', 'definitions.yaml')}",
        f"wrote {os.path.join('.', 'annotations', 'example.yaml')}",
        f"added to {os.path.join('.', '.gitignore')}: {', '.join(NEEDED)}",
    ]
    assert (tmp_path / ".gitignore").read_text(encoding="utf-8") == "*.log\n" + GITIGNORE


def test_a_new_gitignore_is_the_template(tmp_path):
    written = write_scaffold(str(tmp_path))
    assert written.gitignore_added is None
    assert written[-1] == os.path.join(str(tmp_path), ".gitignore")
    assert (tmp_path / ".gitignore").read_text(encoding="utf-8") == GITIGNORE
    code, said = run("-C", str(tmp_path), "init", "--force")
    assert code == 0
    assert "already has every line orqsync needs" in said
    assert (tmp_path / ".gitignore").read_text(encoding="utf-8") == GITIGNORE


def test_a_complete_gitignore_is_left_byte_for_byte(tmp_path):
    text = b"  # mine\r\n" + b"".join(line.encode() + b"  \r\n" for line in reversed(NEEDED))
    path = tmp_path / ".gitignore"
    path.write_bytes(text)
    assert merge_gitignore(str(path)) == []  # trailing spaces do not count, as for git
    assert path.read_bytes() == text


def test_merging_keeps_the_files_line_endings(tmp_path):
    path = tmp_path / ".gitignore"
    path.write_bytes(b"venv/\r\n.orqsync/*.journal\r\n")
    assert merge_gitignore(str(path)) == NEEDED[1:]
    expected = "venv/\r\n.orqsync/*.journal\r\n" + "".join(
        line + "\r\n" for line in [COMMENT, *NEEDED[1:]]
    )
    assert path.read_bytes() == expected.encode()


def test_an_empty_gitignore_gets_the_whole_block(tmp_path):
    path = tmp_path / ".gitignore"
    path.write_bytes(b"")
    assert merge_gitignore(str(path)) == NEEDED
    assert path.read_text(encoding="utf-8") == GITIGNORE


def test_other_files_are_still_refused_without_force(tmp_path):
    (tmp_path / "definitions.yaml").write_text("mine\n", encoding="utf-8")
    (tmp_path / ".gitignore").write_text("mine\n", encoding="utf-8")
    with pytest.raises(OrqsyncError) as raised:
        write_scaffold(str(tmp_path))
    assert raised.value.message == f"definitions.yaml already exists in {tmp_path}"
    assert raised.value.hint == "pass --force to overwrite them"
    assert (tmp_path / "definitions.yaml").read_text(encoding="utf-8") == "mine\n"
    assert (tmp_path / ".gitignore").read_text(encoding="utf-8") == "mine\n"
    assert not (tmp_path / "orqsync.yaml").exists()


def test_a_gitignore_that_is_a_folder_is_an_error_not_a_traceback(tmp_path):
    (tmp_path / ".gitignore").mkdir()
    code, said = run("-C", str(tmp_path), "init")
    assert code == 1
    assert said.startswith(f"error: cannot write {os.path.join(str(tmp_path), '.gitignore')}: ")


@pytest.mark.parametrize("how", ["cwd", "-C"])
def test_init_in_a_subfolder_of_a_project_writes_there_not_in_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    outer = tmp_path / "outer"
    write_scaffold(str(outer), embedded=True)
    before = {path: path.read_bytes() for path in outer.rglob("*") if path.is_file()}
    inner = outer / "annotations" / "team"
    inner.mkdir()
    if how == "cwd":
        monkeypatch.chdir(inner)
        code, said = run("init")
    else:
        monkeypatch.chdir(tmp_path)
        code, said = run("-C", str(inner), "init")
    assert code == 0, said
    for name in ("orqsync.yaml", "definitions.yaml", "annotations/example.yaml", ".gitignore"):
        assert (inner / name).is_file(), name
    assert {path: path.read_bytes() for path in before} == before  # the outer project untouched


def test_init_creates_the_folder_given_with_C(tmp_path):
    code, said = run("-C", str(tmp_path / "new" / "labels"), "init")
    assert code == 0, said
    assert (tmp_path / "new" / "labels" / "orqsync.yaml").is_file()
