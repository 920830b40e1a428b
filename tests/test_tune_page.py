"""The "Tune a fine-tuning recipe" page runs as written: its code blocks, in order, in
a fresh process: the range test, the grid search, the policy comparison and the
KerasTuner recipe."""

import pytest

from pages import run_page


@pytest.mark.slow
def test_the_page_runs_top_to_bottom(tmp_path):
    out = run_page("howto/tune.md", tmp_path, min_blocks=5)
    assert "suggested learning rate" in out
    assert "| learning_rate | policy | epochs | val_macro_f1 |" in out  # the search table
    assert "| policy | learning rate | val_macro_f1 | test accuracy |" in out
    assert "chosen on validation:" in out
    assert "'freeze_epochs'" in out and "'learning_rate'" in out  # KerasTuner's best
    assert (tmp_path / "lr_finder.png").is_file()
    assert (tmp_path / "tuning" / "supersenses").is_dir()
