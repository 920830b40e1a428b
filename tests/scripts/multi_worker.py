"""One worker of a 2-worker MultiWorkerMirroredStrategy masked-LM pretraining run.

Run by tests/test_multi_worker.py as two processes on 127.0.0.1, each with its
TF_CONFIG. Writes the worker's final weights and loss history to `OUT`/worker_i.npz.

    python tests/scripts/multi_worker.py OUT   # with TF_CONFIG set
"""

import json
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import pretrainlib as pl  # noqa: E402

out = pathlib.Path(sys.argv[1])
index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
strategy = tf.distribute.MultiWorkerMirroredStrategy()

texts = list(pl.datasets.wordnet_supersenses().train.texts[:128])
tokenizer = pl.text.WordPieceTokenizer.train(texts, vocab_size=300)
keras.utils.set_random_seed(0)
with strategy.scope():
    pre = pl.Pretrainer(pl.backbones.TextEncoder(tokenizer.vocab_size, num_layers=1,
                                                 hidden_dim=32, max_sequence_length=24),
                        pl.objectives.MaskedLM(tokenizer=tokenizer))
    pre.compile(learning_rate=3e-3)
data = pl.data.text_dataset(texts, tokenizer, batch_size=16, sequence_length=24, pack=True,
                            seed=0)
history = pre.fit(data, epochs=2, verbose=0)
np.savez(out / f"worker_{index}.npz", loss=np.array(history.history["loss"]),
         *[np.asarray(w) for w in pre.get_weights()])
print(json.dumps({"worker": index, "replicas": strategy.num_replicas_in_sync,
                  "loss": history.history["loss"]}))
