"""MultiWorkerMirroredStrategy: two worker processes on 127.0.0.1 pretrain as one
process does, checkpoint from the chief only, and resume after being killed; from
in-memory texts and from a file packed as it streams."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

import pretrainlib as pl

SCRIPT = pathlib.Path(__file__).parent / "scripts" / "multi_worker.py"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_workers(out, *args, env=ENV):
    """Runs both workers; returns their exit codes and last printed reports."""
    cluster = {"worker": [f"127.0.0.1:{free_port()}" for _ in range(2)]}
    workers = []
    for i in range(2):  # in one process group of their own, which a kill takes whole
        group = {"process_group": workers[0].pid} if workers else {"process_group": 0}
        workers.append(subprocess.Popen(
            [sys.executable, str(SCRIPT), str(out), *map(str, args)], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, **group,
            env={**env, "TF_CONFIG": json.dumps({"cluster": cluster,
                                                 "task": {"type": "worker", "index": i}})}))
    try:
        outputs = [w.communicate(timeout=600) for w in workers]
    finally:
        for w in workers:
            w.kill()
    for w, (_, stderr) in zip(workers, outputs):
        assert w.returncode in (0, -9), stderr[-3000:]
    return ([w.returncode for w in workers],
            [json.loads(out.strip().splitlines()[-1]) if out.strip() else None
             for out, _ in outputs])


def weights(path):
    data = np.load(path)
    return data["loss"], [data[k] for k in data.files if k != "loss"]


@pytest.mark.slow
@pytest.mark.parametrize("from_files", [False, True])
def test_two_workers_match_one_process_and_resume_after_a_kill(tmp_path, from_files):
    texts = list(pl.datasets.wordnet_supersenses().train.texts[:128])
    tokenizer = tmp_path / "tokenizer.json"
    pl.text.WordPieceTokenizer.train(texts, vocab_size=300).save(str(tokenizer))
    env = {**ENV, "TOKENIZER": str(tokenizer), "PRETRAINLIB_CACHE": str(tmp_path / "cache")}
    if from_files:  # packed as they stream from a file, resumed from a recorded position
        corpus = tmp_path / "corpus.txt"
        corpus.write_text("\n".join(t.replace("\n", " ") for t in texts))
        env["CORPUS"] = str(corpus)
    alone = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], env=env,
                           capture_output=True, text=True, timeout=600)
    assert alone.returncode == 0, alone.stderr[-3000:]
    codes, reports = two_workers(tmp_path, env=env)
    assert codes == [0, 0] and [r["replicas"] for r in reports] == [2, 2]
    single_loss, single = weights(tmp_path / "single.npz")
    assert single_loss[-1] < single_loss[0]  # it learned
    (loss, first), (_, second) = (weights(tmp_path / f"worker_{i}.npz") for i in range(2))
    assert len(first) > 10
    for a, b, c in zip(first, second, single):
        np.testing.assert_array_equal(a, b)  # all-reduced: the workers never drift apart
        np.testing.assert_allclose(a, c, atol=1e-5)  # and they train as one process does
    np.testing.assert_allclose(loss, single_loss, rtol=1e-5)

    # Killed with SIGKILL two steps into epoch 1 (only the chief wrote the checkpoint of
    # epoch 0's end), then started again: both resume from the chief's checkpoint.
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    checkpoints = tmp_path / "checkpoints"
    steps = reports[0]["batches_per_epoch"]
    codes, _ = two_workers(resumed, checkpoints, steps + 2, env=env)
    assert codes == [-9, -9]
    assert sorted(p.name for p in checkpoints.iterdir()) == [f"step-{steps:06d}"]
    codes, reports = two_workers(resumed, checkpoints, env=env)
    assert codes == [0, 0]
    assert reports[0]["checkpoints"] == [f"step-{k * steps:06d}" for k in (1, 2, 3)]
    for i in range(2):
        _, after = weights(resumed / f"worker_{i}.npz")
        for a, b in zip(after, first):
            np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.slow
def test_each_worker_reads_its_own_chunks_of_the_files(tmp_path):
    wordnet = pl.datasets.wordnet_supersenses()
    sample = wordnet.train.sample(2700, seed=0)
    for i in range(3):  # three files of 900 records: three chunks of the index
        with open(tmp_path / f"part-{i}.jsonl", "w") as f:
            for text, label in list(zip(sample.texts, sample.labels))[i::3]:
                f.write(json.dumps({"text": text, "label": int(label)}) + "\n")
    tokenizer = tmp_path / "tokenizer.json"
    pl.text.WordPieceTokenizer.train(list(sample.texts), vocab_size=300).save(str(tokenizer))
    env = {**ENV, "TOKENIZER": str(tokenizer), "LABELED": str(tmp_path / "part-*.jsonl"),
           "PRETRAINLIB_CACHE": str(tmp_path / "cache")}
    codes, reports = two_workers(tmp_path, env=env)
    assert codes == [0, 0]
    reads = [set(r["reads"]) for r in reports]
    assert reads[0] and reads[1] and not reads[0] & reads[1]  # disjoint
    assert reads[0] | reads[1] == {0, 1, 2}  # together: every chunk of the files
    (loss, first), (_, second) = (weights(tmp_path / f"worker_{i}.npz") for i in range(2))
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)  # one model, all-reduced
    assert loss[-1] < loss[0]

    # killed two steps into epoch 1 and resumed: the uninterrupted run's weights
    resumed, checkpoints = tmp_path / "resumed", tmp_path / "checkpoints"
    resumed.mkdir()
    assert two_workers(resumed, checkpoints, 8, env=env)[0] == [-9, -9]
    assert two_workers(resumed, checkpoints, env=env)[0] == [0, 0]
    for i in range(2):
        for a, b in zip(weights(resumed / f"worker_{i}.npz")[1], first):
            np.testing.assert_allclose(a, b, atol=1e-6)
