"""Shared by the benchmark scripts: where and how a result is written."""

from __future__ import annotations

import json
import pathlib


def write(result: dict, out: str) -> pathlib.Path:
    """Writes `result` as indented JSON to `out` (folders made), says where."""
    path = pathlib.Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(f"written to {path}")
    return path
