"""Freezing policies under tf.distribute.MirroredStrategy on two logical CPUs."""

import json
import pathlib
import subprocess
import sys

import pytest

import pretrainlib as pl

SCRIPT = pathlib.Path(__file__).parent / "scripts" / "mirrored_policies.py"


def test_policies_under_mirrored_strategy_match_one_device():
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True,
                          timeout=600, env={"TF_CPP_MIN_LOG_LEVEL": "2",
                                            **__import__("os").environ})
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results["replicas"] == 2
    assert results["frozen_then_trained"]
    # Same data, same steps: two replicas give one device's weights.
    assert results["max_difference"] < 1e-5
    for name in ("lora", "bitfit", "adapters"):
        assert len(results[name]) == 2 and all(v == v for v in results[name]), name
    # Masked-LM pretraining (masking drawn per batch, packed and shuffled data, clipped
    # gradients, a token-weighted loss) gives one device's weights too: masks are drawn
    # on the global batch before the split, so each replica gets its own rows' masks;
    # the clip and the loss's divisor are global; no extra pass advances the shuffle.
    one, two = results["mlm_loss"]
    assert one[1] < one[0]
    assert two == pytest.approx(one, abs=1e-5)
    assert results["mlm_max_difference"] < 2e-5


def test_auto_picks_tpu_then_several_gpus_then_one_gpu_then_the_default(capsys):
    assert pl.distribute.choice(tpu=True, gpus=8) == "tpu"
    assert pl.distribute.choice(tpu=False, gpus=2) == "mirrored"
    assert pl.distribute.choice(tpu=False, gpus=1) == "one_gpu"
    assert pl.distribute.choice(tpu=False, gpus=0) == "default"
    strategy = pl.distribute.auto()  # this machine: CPU only
    assert strategy.num_replicas_in_sync == 1
    assert "pl.distribute.auto:" in capsys.readouterr().out
