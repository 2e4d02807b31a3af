"""Fetch the Mermaid bundle the chart test draws the pull-request comment's charts with.

    python3 .ci/fetch_mermaid.py DEST     (bash .ci/run does it, into its virtualenv)

GitHub draws a comment's ```mermaid blocks with the Mermaid library;
tests/test_mermaid_browser.py draws ours with it in headless Chromium. The package comes from
the npm registry at a pinned version, checked against the registry's sha512 integrity (as pip
checks the lock's hashes); only its self-contained browser bundle, dist/mermaid.min.js, is
kept. Nothing is fetched when DEST holds it already.
"""

from __future__ import annotations

import base64
import hashlib
import io
import sys
import tarfile
import urllib.request
from pathlib import Path

VERSION = "11.17.2"
TARBALL = f"https://registry.npmjs.org/mermaid/-/mermaid-{VERSION}.tgz"
# the registry's dist.integrity of that version (npm view mermaid@VERSION dist.integrity)
INTEGRITY = (
    "sha512-V6K3C8EBdEsPFZXSKMJe6ppQOENxuHARr9GvHX4hh47lAbhMRD9qf4oEK7LoaRQxULMa80/"
    "qt5gHO73aCleBBg=="
)
BUNDLE = "package/dist/mermaid.min.js"


def main(dest: Path) -> int:
    target = dest / f"mermaid-{VERSION}.min.js"
    if target.is_file():
        return 0
    with urllib.request.urlopen(TARBALL, timeout=120) as answer:
        data = answer.read()
    digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != INTEGRITY:
        print(f"error: {TARBALL} is not the pinned package ({digest})", file=sys.stderr)
        return 1
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        member = archive.extractfile(BUNDLE)
        assert member is not None, f"{BUNDLE} is not in {TARBALL}"
        bundle = member.read()
    dest.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    partial.write_bytes(bundle)
    partial.replace(target)
    print(f"mermaid {VERSION}: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
