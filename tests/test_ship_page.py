"""The "Ship a fine-tuned model" page runs as written: its code blocks, in order, in a
fresh process: export and serve, TF Hub fine-tuning, LiteRT, quantize, prune, adapter
files on an int8 base."""

import pytest

from pages import run_page


@pytest.mark.slow
def test_the_page_runs_top_to_bottom(tmp_path):
    out = run_page("howto/ship.md", tmp_path, min_blocks=7)
    assert "[b'" in out  # class names from the serving signature
    assert "int8: " in out and "x smaller" in out and "pruned: " in out
    assert "50.0% of" in out  # the summary's pruning line
    assert (tmp_path / "exported" / "supersense" / "1" / "saved_model.pb").is_file()
    assert (tmp_path / "int8.keras").is_file()
    assert "same outputs: True" in out  # adapters read back onto the int8 base file
    assert (tmp_path / "supersense.adapters.h5").is_file()
