"""The reference of scenarios 1-3: a bare `yaml.load(text, Loader=yaml.CSafeLoader)` per file.

Run as a subprocess: `python bench/yaml_reference.py FILE_LIST`, where FILE_LIST holds one
path per line. Every file is read into memory first; only the loop of `yaml.load` calls is
timed (no interpreter start-up, no import of yaml, no file reading). Prints one JSON line:
{"seconds": ..., "files": ..., "bytes": ...}.
"""

from __future__ import annotations

import json
import sys
import time

import yaml


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: yaml_reference.py FILE_LIST", file=sys.stderr)
        return 2
    loader = getattr(yaml, "CSafeLoader", None)
    if loader is None:
        print("PyYAML was built without libyaml: yaml.CSafeLoader is missing", file=sys.stderr)
        return 1
    with open(argv[0], encoding="utf-8") as handle:
        paths = [line.strip() for line in handle if line.strip()]
    texts = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            texts.append(handle.read())
    start = time.perf_counter()
    for text in texts:
        yaml.load(text, Loader=loader)
    seconds = time.perf_counter() - start
    size = sum(len(text.encode("utf-8")) for text in texts)
    print(json.dumps({"seconds": seconds, "files": len(texts), "bytes": size}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
