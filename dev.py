#!/usr/bin/env python3
"""The project's two commands; needs only Python 3.10-3.12 on the machine.

    python3 dev.py demo         # pretrain -> fine-tune -> evaluate on bundled WordNet glosses
    python3 dev.py test         # the fast test tier (unit tests, harness basics, one smoke test)
    python3 dev.py test --all   # every test, the slow end-to-end ones included (what CI runs)

Pytest arguments go after `test`; naming test files or a `-m` expression runs those
instead of the fast tier.

Each creates `.venv/` beside this file on first use and installs the project with its
`dev` extras into it; it reinstalls only when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import subprocess
import sys
import venv

ROOT = pathlib.Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_environment() -> None:
    stamp = VENV / ".pretrainlib-installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted and PYTHON.exists():
        return
    if not PYTHON.exists():
        print(f"creating virtual environment {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("installing pretrainlib and its dependencies (first run: a few minutes)", flush=True)
    pip = [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip", "setuptools>=77,<81"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
    stamp.write_text(wanted)


def main(argv: list[str]) -> int:
    commands = {
        "demo": [str(ROOT / "examples" / "wordnet_demo.py")],
        "test": ["-m", "pytest"],
    }
    if not argv or argv[0] not in commands:
        print(__doc__)
        return 2
    ensure_environment()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    args = argv[1:]
    if argv[0] == "test":
        args = tier_arguments(args)
        args = parallel_test_arguments(args) + args
    return subprocess.call([str(PYTHON), *commands[argv[0]], *args], cwd=ROOT, env=env)


def tier_arguments(args: list[str]) -> list[str]:
    """`--all` runs every test; otherwise the fast tier (tests not marked `slow`),
    unless the arguments already choose tests (paths, `-m` or `-k`)."""
    if "--all" in args:
        return [a for a in args if a != "--all"]
    chooses = any(a in ("-m", "-k") or a.startswith(("-m", "-k", "tests")) or a.endswith(".py")
                  or "::" in a for a in args)
    return args if chooses else ["-m", "not slow", *args]


def parallel_test_arguments(args: list[str]) -> list[str]:
    """pytest-xdist workers, one test file per worker at a time (module fixtures stay shared).

    Two workers on two cores run the suite ~1.5x faster than one: much of a test's time is
    single-threaded Python (tracing, building), which the other worker overlaps (a third
    worker on two cores was slower). More than four would mostly multiply TensorFlow's
    memory. Pass `-n 0` to run in one process.
    """
    if any(a == "-n" or a.startswith(("-n", "--numprocesses")) for a in args):
        return []
    workers = min(4, os.cpu_count() or 1)
    # loadfile: a file's tests share one worker and its module fixtures (measured faster
    # here than handing tests out one by one); tests/conftest.py sends the longest files
    # first.
    return ["-n", str(workers), "--dist", "loadfile"] if workers > 1 else []


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
