"""MultiWorkerMirroredStrategy: two worker processes on 127.0.0.1 pretrain together."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = pathlib.Path(__file__).parent / "scripts" / "multi_worker.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_workers_pretrain_to_identical_weights(tmp_path):
    cluster = {"worker": [f"127.0.0.1:{free_port()}" for _ in range(2)]}
    workers = [subprocess.Popen(
        [sys.executable, str(SCRIPT), str(tmp_path)], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
             "TF_CONFIG": json.dumps({"cluster": cluster,
                                      "task": {"type": "worker", "index": i}})})
        for i in range(2)]
    try:
        outputs = [w.communicate(timeout=600) for w in workers]
    finally:
        for w in workers:
            w.kill()
    for w, (_, stderr) in zip(workers, outputs):
        assert w.returncode == 0, stderr[-3000:]
    reports = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert [r["replicas"] for r in reports] == [2, 2]  # one replica per worker, in sync
    first, second = (np.load(tmp_path / f"worker_{i}.npz") for i in range(2))
    loss = first["loss"]
    assert loss[1] < loss[0]  # it learned
    np.testing.assert_array_equal(second["loss"], loss)
    weights = [k for k in first.files if k != "loss"]
    assert len(weights) > 10
    for key in weights:  # gradients were all-reduced: the workers never drift apart
        np.testing.assert_array_equal(first[key], second[key])
