"""The user-written objective in docs/objectives.md runs as documented."""

import pathlib
import re
import runpy

import keras
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_documented_rotation_objective_pretrains_a_convnet(tmp_path):
    text = (ROOT / "docs" / "objectives.md").read_text()
    block = re.search(r"## A complete objective of your own.*?```python\n(.*?)```", text,
                      re.S).group(1)
    block = block.replace("epochs=4)", "epochs=4, verbose=0)")
    keras.utils.set_random_seed(0)
    script = tmp_path / "rotation_objective.py"  # a real file, so AutoGraph reads it
    script.write_text(block)
    namespace = runpy.run_path(str(script))
    losses = namespace["history"].history["loss"]
    assert losses[-1] < 0.8 * losses[0], losses
    assert namespace["history"].history["accuracy"][-1] > 0.5  # chance is 0.25
    assert not any("rotation_logits" in w.path for w in namespace["backbone"].weights)
