"""The headless browser of the browser tests: Debian's chromium, driven by Playwright with that
executable (no browser is downloaded). Without it a test skips and says why; under CI (CI=true)
it fails instead, since `.ci/run` installs what these tests need."""

from __future__ import annotations

import os
import shutil

import pytest


def missing(why: str, remedy: str) -> None:
    """Skip, or fail under CI, because `why`."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why}: CI must run the browser tests ({remedy})")
    pytest.skip(why)


def chromium() -> str:
    """Chromium's executable ($ORQSYNC_CHROMIUM, else `chromium` on PATH)."""
    executable = os.environ.get("ORQSYNC_CHROMIUM") or shutil.which("chromium")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing("Playwright is not installed (pip install playwright)", "the test extras have it")
    if executable is None:
        missing("chromium is not installed (apt-get install chromium)", ".ci/run installs it")
    assert executable is not None
    return executable


LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu"]
