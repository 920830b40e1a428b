"""Every public object type round-trips through .keras in a fresh process."""

import pathlib
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).parent / "scripts" / "round_trip.py"


@pytest.mark.slow
def test_every_public_object_reloads_in_a_fresh_process_with_safe_mode(tmp_path):
    # Two processes: nothing from the saving one (registered classes, layer name
    # counters, traced functions) can help the loading one.
    for mode in ("save", "load"):
        run = subprocess.run([sys.executable, str(SCRIPT), mode, str(tmp_path)],
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    lines = [line for line in run.stdout.splitlines() if ": ok" in line]
    kinds = ["WordPieceTokenizer", "TextEncoder", "ConvNet", "VisionEncoder", "MaskedLM",
             "CausalLM", "Autoencoder", "ImageClassification", "Distillation",
             "FullFineTune", "FeatureExtraction", "FreezeThenUnfreeze", "GradualUnfreeze",
             "LayerwiseLRDecay", "BitFit", "LoRA", "Adapters", "Classifier"]
    assert len(lines) == 19 and all(any(k in line for line in lines) for k in kinds), \
        run.stdout
