"""Fixtures for the emulator tests: an in-process emulator, an httpx client on it, a server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from orqsync.emulator import Emulator, EmulatorConfig, EmulatorServer

from .emulator_helpers import API_KEY, DEFINITIONS_YAML, EVALUATIONS_YAML, client_for

MakeEmulator = Callable[..., Emulator]


@pytest.fixture
def definitions_file(tmp_path: Path) -> Path:
    """The example definitions of docs/design.md, and a select whose options YAML 1.1 reads
    as booleans."""
    path = tmp_path / "definitions.yaml"
    path.write_text(DEFINITIONS_YAML, encoding="utf-8")
    return path


@pytest.fixture
def evaluations_file(tmp_path: Path) -> Path:
    """Evaluator results of every output type on the standard span, and one on another span."""
    path = tmp_path / "evaluations.yaml"
    path.write_text(EVALUATIONS_YAML, encoding="utf-8")
    return path


@pytest.fixture
def make_emulator(definitions_file: Path) -> Iterator[MakeEmulator]:
    """Build emulators on the example definitions; every one is closed after the test."""
    made: list[Emulator] = []

    def make(**overrides: object) -> Emulator:
        settings: dict[str, object] = {
            "api_keys": (API_KEY,),
            "definitions_path": str(definitions_file),
        }
        settings.update(overrides)
        emulator = Emulator(EmulatorConfig(**settings))  # type: ignore[arg-type]
        made.append(emulator)
        return emulator

    yield make
    for emulator in made:
        emulator.close()


@pytest.fixture
def emulator(make_emulator: MakeEmulator) -> Emulator:
    """An emulator with the example definitions and no faults."""
    return make_emulator()


@pytest.fixture
def client(emulator: Emulator) -> Iterator[httpx.Client]:
    """An authenticated in-process client on `emulator`."""
    with client_for(emulator) as http:
        yield http


@pytest.fixture
def server(emulator: Emulator) -> Iterator[EmulatorServer]:
    """`emulator` served on 127.0.0.1 with a free port."""
    with EmulatorServer(emulator) as running:
        yield running
