"""What a user installs (`pip install .`, not the editable install the tests run from) holds
every package of the source tree: setuptools takes only the ones pyproject.toml lists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent


def listed_packages() -> set[str]:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    block = re.search(r"^\[tool\.setuptools\]\npackages = \[(.*?)\]", text, re.M | re.S)
    assert block is not None, "no packages list under [tool.setuptools]"
    return set(re.findall(r'"([^"]+)"', block.group(1)))


def test_every_package_of_the_tree_is_listed_for_the_wheel() -> None:
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "orqsync").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert len(on_disk) >= 8
    assert on_disk - listed_packages() == set()
