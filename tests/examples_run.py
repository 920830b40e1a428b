"""Runs an example script as a user runs it: in its own process, from the repository."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_example(script: str, *arguments, timeout: int = 900) -> subprocess.CompletedProcess:
    """Runs `examples/<script>` with `arguments`; fails the test, showing the end of
    its output, unless it exits with 0."""
    run = subprocess.run([sys.executable, str(ROOT / "examples" / script), *map(str, arguments)],
                         capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run
