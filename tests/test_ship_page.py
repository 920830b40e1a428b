"""The "Ship a fine-tuned model" page runs as written: its code blocks, in order, in a
fresh process: export and serve, TF Hub fine-tuning, LiteRT, quantize, prune."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

PAGE = pathlib.Path(__file__).parent.parent / "docs" / "howto" / "ship.md"


@pytest.mark.slow
def test_the_page_runs_top_to_bottom(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(blocks) >= 6
    script = tmp_path / "page.py"
    script.write_text("\n".join(blocks))
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=900,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
                              "CUDA_VISIBLE_DEVICES": ""})
    assert run.returncode == 0, run.stderr[-4000:]
    out = run.stdout
    assert "[b'" in out  # class names from the serving signature
    assert "int8: " in out and "x smaller" in out and "pruned: " in out
    assert "50.0% of" in out  # the summary's pruning line
    assert (tmp_path / "exported" / "supersense" / "1" / "saved_model.pb").is_file()
    assert (tmp_path / "int8.keras").is_file()
