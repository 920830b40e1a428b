"""The "Bring your own data" page runs as written: its code blocks, in order, in a
fresh process, on the small files its first block writes."""

import pathlib
import re
import subprocess
import sys

PAGE = pathlib.Path(__file__).parent.parent / "docs" / "howto" / "your_data.md"


def test_the_page_runs_top_to_bottom(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(blocks) >= 6
    script = tmp_path / "page.py"
    script.write_text("\n".join(blocks))
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=900,
                         env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "2",
                              "PRETRAINLIB_CACHE": str(tmp_path / "cache")})
    assert run.returncode == 0, run.stderr[-4000:]
    out = run.stdout
    assert "['animal', 'artifact'" in out  # the class names, from string labels
    assert "| macro_f1" in out or "macro_f1" in out  # the evaluation report
    assert "broken.jsonl, line 2: not valid JSON" in out  # the error names file and line
    assert (tmp_path / "my_data" / "checkpoints").is_dir()
