"""`orqsync emulator serve` refuses what it cannot serve with one line and a hint, exit 1.

Each case fails before the server would start, so the command returns at once; a case that
started serving would hang the test, which the timeout of CI would catch.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from orqsync.cli import cli


def serve(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["emulator", "serve", "--port", "0", *args])
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    return result.exit_code, result.stderr


def assert_one_refusal(code: int, stderr: str, message: str, hint: str) -> None:
    assert code == 1
    lines = stderr.splitlines()
    assert len(lines) == 2, stderr
    assert lines[0].startswith("error: ") and message in lines[0], stderr
    assert lines[1].startswith("  hint: ") and hint in lines[1], stderr
    assert "Traceback" not in stderr


def test_a_port_in_use():
    with socket.create_server(("127.0.0.1", 0)) as held:
        port = held.getsockname()[1]
        code, stderr = serve("--port", str(port))
    assert_one_refusal(
        code,
        stderr,
        f"cannot listen on 127.0.0.1:{port}: the address is already in use",
        "--port 0",
    )


@pytest.mark.parametrize("host", ["999.1.1.1", "no-such-host.invalid"])
def test_a_host_that_is_not_an_address(host: str):
    code, stderr = serve("--host", host, "--api-key", "a-key-of-ones-own")
    assert_one_refusal(
        code, stderr, f"{host} is not an IP address or a known host name", "127.0.0.1"
    )


def test_an_address_of_another_machine():
    # TEST-NET-1: never an address of this machine
    code, stderr = serve("--host", "192.0.2.1", "--api-key", "k")
    assert_one_refusal(code, stderr, "192.0.2.1 is not an address of this machine", "127.0.0.1")


def test_definitions_that_are_not_yaml(tmp_path: Path):
    path = tmp_path / "definitions.yaml"
    path.write_text("version: 1\ndefinitions: [\n", encoding="utf-8")
    code, stderr = serve("--definitions", str(path))
    assert_one_refusal(code, stderr, "definitions.yaml:3:1: not valid YAML", "YAML")


def test_a_definition_type_orqsync_refuses(tmp_path: Path):
    path = tmp_path / "definitions.yaml"
    path.write_text("version: 1\ndefinitions:\n  fix: {type: correction}\n", encoding="utf-8")
    code, stderr = serve("--definitions", str(path))
    assert_one_refusal(
        code,
        stderr,
        'definitions.yaml:3:15: definition "fix" has unknown type "correction"',
        "single_select",
    )


def test_a_database_in_a_folder_that_does_not_exist(tmp_path: Path):
    code, stderr = serve("--db", str(tmp_path / "missing" / "emulator.db"))
    assert_one_refusal(code, stderr, "missing does not exist", "create the folder")


def test_a_database_that_is_a_folder(tmp_path: Path):
    code, stderr = serve("--db", str(tmp_path))
    assert_one_refusal(code, stderr, "it is a folder", "name a file")


def test_a_database_that_is_not_a_database(tmp_path: Path):
    path = tmp_path / "notes.txt"
    path.write_text("not a database, but long enough to have a header " * 4, encoding="utf-8")
    code, stderr = serve("--db", str(path))
    assert_one_refusal(code, stderr, "the file is not an SQLite database", "new file")


@pytest.mark.parametrize("rate", ["0", "-5", "nan"])
def test_a_rate_limit_that_is_not_positive(rate: str):
    code, stderr = serve("--rate-limit", rate)
    assert_one_refusal(code, stderr, "Invalid value for '--rate-limit'", "--help")


def test_every_option_has_help():
    result = CliRunner().invoke(cli, ["emulator", "serve", "--help"])
    assert result.exit_code == 0
    options = [line for line in result.stdout.splitlines() if line.lstrip().startswith("--")]
    assert len(options) >= 13
    for line in options:
        name, _, rest = line.strip().partition("  ")
        assert rest.strip(), f"{name} has no help"


def test_an_evaluations_file_with_an_unknown_output(tmp_path: Path):
    path = tmp_path / "results.yaml"
    path.write_text(
        "evaluator_results:\n  - {id: E1, trace_id: t, span_id: s, output: bool}\n",
        encoding="utf-8",
    )
    code, stderr = serve("--evaluations", str(path))
    assert_one_refusal(code, stderr, f'{path}:2:47: unknown output "bool"', "boolean, number")


def test_an_embedded_project_names_its_broken_evaluations_file(make_project):
    project = make_project(**{"annotations/a.yaml": "version: 1\nspans: []\n"})
    project.write("results.yaml", "evaluator_results: [{id: E1}]\n")
    text = (project.root / "orqsync.yaml").read_text()
    project.write(
        "orqsync.yaml",
        text.replace(
            "  base_url: embedded\n", "  base_url: embedded\n  emulator_evaluations: results.yaml\n"
        ),
    )
    project.write(
        "annotations/a.yaml",
        "version: 1\nspans:\n  - {trace_id: t, span_id: s, annotations: {rating: good}}\n",
    )
    result = project.run("apply", "--auto-approve")
    assert result.exit_code == 1
    assert (
        "results.yaml" in result.stderr
        and "api.emulator_evaluations in orqsync.yaml" in result.stderr
    )
    assert "Traceback" not in result.output


def test_a_non_loopback_address_needs_a_key_of_ones_own() -> None:
    from click.testing import CliRunner

    from orqsync.cli import cli

    result = CliRunner().invoke(cli, ["emulator", "serve", "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 1  # refused before anything listens
    assert result.stderr == (
        "error: --host 0.0.0.0 listens beyond this machine, and without --api-key the emulator "
        "would accept its well-known default key emulator-key\n"
        "  hint: give --api-key KEY (a secret of your own), or listen on 127.0.0.1; the "
        "emulator is a test tool, not orq.ai\n"
    )


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.7", False),
        ("emulator.example", False),
    ],
)
def test_what_counts_as_loopback(host: str, loopback: bool) -> None:
    from orqsync.cli import _loopback

    assert _loopback(host) is loopback
