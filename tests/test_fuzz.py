"""A short, seeded run of the fuzzer (tests/fuzz.py): mutated YAML, state and plan files must
give a result or a problem that names its file, and the two YAML readers must agree."""

from __future__ import annotations

from pathlib import Path

import fuzz  # tests/fuzz.py: tests/ is on the path, as for conftest


def test_a_seeded_fuzzing_run_finds_nothing_and_reaches_every_outcome(tmp_path: Path) -> None:
    result = fuzz.run(0, seed=7, findings=tmp_path / "findings", rounds=400)
    assert result["findings"] == []
    outcomes = result["outcomes"]
    assert sum(outcomes.values()) == 400
    for outcome in ("yaml desired", "yaml problems", "state read", "state refused"):
        assert outcomes.get(outcome, 0) > 0, outcome  # not vacuous: both ways, every reader
    assert outcomes.get("plan read", 0) > 0 and outcomes.get("plan refused", 0) > 0


def test_a_mutation_changes_its_input_and_is_reproducible() -> None:
    import random

    data = b"version: 1\nspans: []\n"
    first = [fuzz.mutate(data, random.Random(n), [data]) for n in range(20)]
    again = [fuzz.mutate(data, random.Random(n), [data]) for n in range(20)]
    assert first == again
    assert sum(1 for mutated in first if mutated != data) >= 18
