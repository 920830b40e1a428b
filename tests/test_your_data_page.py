"""The "Bring your own data" page runs as written: its code blocks, in order, in a
fresh process, on the small files its first block writes."""

import pytest

from pages import run_page


@pytest.mark.slow
def test_the_page_runs_top_to_bottom(tmp_path):
    out = run_page("howto/your_data.md", tmp_path, min_blocks=6,
                   PRETRAINLIB_CACHE=str(tmp_path / "cache"))
    assert "['animal', 'artifact'" in out  # the class names, from string labels
    assert "| macro_f1" in out or "macro_f1" in out  # the evaluation report
    assert "broken.jsonl, line 2: not valid JSON" in out  # the error names file and line
    assert (tmp_path / "my_data" / "checkpoints").is_dir()
