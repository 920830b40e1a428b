"""Freezing policies under tf.distribute.MirroredStrategy on two logical CPUs."""

import json
import pathlib
import subprocess
import sys

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
