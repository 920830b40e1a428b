"""A masked-LM pretraining run, alone or as one worker of a 2-worker
MultiWorkerMirroredStrategy (with TF_CONFIG set), optionally checkpointed and killed.

Run by tests/test_multi_worker.py: once without TF_CONFIG (one process, the same
global batch), then as two processes on 127.0.0.1. Reads the tokenizer from the JSON
file named by $TOKENIZER (one vocabulary for every process: training one per process
may break ties at the vocabulary's cut differently). Writes the final weights and the
loss history to `OUT`/worker_<i>.npz (`OUT`/single.npz alone). With $CORPUS (a file)
the texts are packed as they stream from it; with $LABELED (a glob of JSON Lines
files with "text" and "label") a classifier fine-tunes on them in 6-step epochs,
each worker reading its own chunks (the report lists the chunks it read).

    python tests/scripts/multi_worker.py OUT [CHECKPOINTS [KILL_AT_STEP]]
"""

import json
import os
import pathlib
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import pretrainlib as pl  # noqa: E402

out = pathlib.Path(sys.argv[1])
checkpoints = sys.argv[2] if len(sys.argv) > 2 else None
kill_at = int(sys.argv[3]) if len(sys.argv) > 3 else None
config = os.environ.get("TF_CONFIG")
index = json.loads(config)["task"]["index"] if config else None
strategy = tf.distribute.MultiWorkerMirroredStrategy() if config else tf.distribute.get_strategy()


class Kill(keras.callbacks.Callback):
    """SIGKILLs the cluster once `kill_at` optimizer steps are done: the whole process
    group when the workers were started in one of their own (as a machine failure would
    take them), so no worker sees its peer vanish mid all-reduce and exits with an error
    before it reaches its own kill."""

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == kill_at:
            if os.getpgrp() != os.getpgid(os.getppid()):
                os.killpg(os.getpgrp(), signal.SIGKILL)
            os.kill(os.getpid(), signal.SIGKILL)


texts = list(pl.datasets.wordnet_supersenses().train.texts[:128])
tokenizer = pl.text.WordPieceTokenizer.load(os.environ["TOKENIZER"])
keras.utils.set_random_seed(0)
reads = []  # the chunks of the files this process read


def build():
    """The model (built and compiled under the strategy), its data, steps per epoch."""
    with strategy.scope():
        encoder = pl.backbones.TextEncoder(tokenizer.vocab_size, num_layers=1, hidden_dim=32,
                                           max_sequence_length=24)
        if os.environ.get("LABELED"):
            model = pl.FineTuner(encoder, pl.heads.Classifier(6),
                                 policy=pl.freezing.FullFineTune())
        else:
            model = pl.Pretrainer(encoder, pl.objectives.MaskedLM(tokenizer=tokenizer))
        # SGD, not Adam: Adam turns the float noise of gradients that are zero in exact
        # arithmetic (attention key biases) into full steps of either sign, so the
        # comparison with one process would measure that instead (see tests/harness.py).
        model.compile("sgd", learning_rate=0.05)
    if os.environ.get("LABELED"):  # labeled JSON Lines files, each worker its own chunks
        read = pl.data.TextFiles.read
        pl.data.TextFiles.read = lambda self, chunk: reads.append(int(chunk)) or read(
            self, chunk)
        data = pl.data.text_dataset(os.environ["LABELED"], tokenizer, label_field="label",
                                    batch_size=16, sequence_length=24, seed=0)
        return model, data, 6
    if os.environ.get("CORPUS"):  # the same texts packed as they stream from a file
        return model, pl.data.text_dataset(os.environ["CORPUS"], tokenizer, batch_size=16,
                                           sequence_length=24, pack=True, seed=0,
                                           buffer_size=64), None
    return model, pl.data.text_dataset(texts, tokenizer, batch_size=16, sequence_length=24,
                                       pack=True, seed=0), None


pre, data, steps = build()
callbacks = []
if checkpoints:
    callbacks.append(pl.training.Checkpoint(checkpoints))  # at each epoch's end
if kill_at is not None:
    callbacks.append(Kill())
history = pre.fit(data, epochs=3, callbacks=callbacks, verbose=0, steps_per_epoch=steps)
name = "single" if index is None else f"worker_{index}"
np.savez(out / f"{name}.npz", loss=np.array(history.history["loss"]),
         *[np.asarray(w) for w in pre.get_weights()])
print(json.dumps({"worker": index, "replicas": strategy.num_replicas_in_sync,
                  "batches_per_epoch": steps or int(data.cardinality()), "reads": reads,
                  "checkpoints": sorted(p.name for p in pathlib.Path(checkpoints).iterdir())
                  if checkpoints else [], "loss": history.history["loss"]}))
