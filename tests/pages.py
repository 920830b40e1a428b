"""Runs a documentation page as written: its Python blocks, in order, in a fresh process."""

import os
import pathlib
import re
import subprocess
import sys

DOCS = pathlib.Path(__file__).parent.parent / "docs"


def run_page(page: str, folder: pathlib.Path, min_blocks: int, **env) -> str:
    """Runs `docs/<page>` in `folder`; returns its stdout (fails with its stderr)."""
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), flags=re.S)
    assert len(blocks) >= min_blocks
    script = folder / "page.py"
    script.write_text("\n".join(blocks))
    run = subprocess.run([sys.executable, str(script)], cwd=folder, capture_output=True,
                         text=True, timeout=900,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
                              "CUDA_VISIBLE_DEVICES": "", **env})
    assert run.returncode == 0, run.stderr[-4000:]
    return run.stdout
