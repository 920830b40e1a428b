"""Run by tests/test_distributed.py in its own process: TensorFlow's logical devices
must be configured before anything else touches TensorFlow."""

import json
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])

import keras  # noqa: E402
import numpy as np  # noqa: E402

import pretrainlib as pl  # noqa: E402

texts = [line for line in pl.datasets.wordnet_supersenses().train.texts[:64]]
labels = list(pl.datasets.wordnet_supersenses().train.labels[:64])
tok = pl.text.WordPieceTokenizer.train(texts * 2, vocab_size=300)
results = {}


def run(strategy, policy):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        encoder = pl.backbones.TextEncoder(tok.vocab_size, num_layers=2, hidden_dim=32,
                                           max_sequence_length=24)
        ft = pl.FineTuner(encoder, pl.heads.Classifier(6, dropout=0.0), policy=policy)
        ft.compile(optimizer=pl.training.SGD(learning_rate=0.05))
    ds = pl.data.text_dataset(texts, tok, labels=labels, batch_size=16, sequence_length=24,
                              shuffle=False)
    before = [np.array(w) for w in ft.backbone.get_weights()]
    ft.fit(ds, epochs=1, verbose=0, cache_features=False)
    frozen = all(np.array_equal(a, b) for a, b in zip(before, ft.backbone.get_weights()))
    ft.fit(ds, epochs=2, initial_epoch=1, verbose=0)
    trained = all(not np.array_equal(a, b) for a, b in zip(before, ft.backbone.get_weights()))
    return ft, frozen, trained


mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
policy = pl.freezing.FreezeThenUnfreeze(freeze_epochs=1, backbone_lr_multiplier=0.5)
one, *_ = run(tf.distribute.get_strategy(), policy)
two, frozen, trained = run(mirrored, policy)
results["replicas"] = mirrored.num_replicas_in_sync
results["frozen_then_trained"] = frozen and trained
results["max_difference"] = max(float(np.abs(a - b).max())
                                for a, b in zip(one.get_weights(), two.get_weights()))
for name, policy in (("lora", pl.freezing.LoRA(rank=2)), ("bitfit", pl.freezing.BitFit()),
                     ("adapters", pl.freezing.Adapters(4))):
    keras.utils.set_random_seed(0)
    with mirrored.scope():
        ft = pl.FineTuner(pl.backbones.TextEncoder(tok.vocab_size, num_layers=1, hidden_dim=16,
                                                   max_sequence_length=24),
                          pl.heads.Classifier(6), policy=policy)
        ft.compile(learning_rate=1e-2)
    history = ft.fit(pl.data.text_dataset(texts, tok, labels=labels, batch_size=16,
                                          sequence_length=24), epochs=2, verbose=0)
    results[name] = history.history["loss"]


def pretrain(strategy):
    """Two epochs of masked LM (with masking drawn per batch) under `strategy`."""
    keras.utils.set_random_seed(0)
    with strategy.scope():
        pre = pl.Pretrainer(pl.backbones.TextEncoder(tok.vocab_size, num_layers=1,
                                                     hidden_dim=32, max_sequence_length=24),
                            pl.objectives.MaskedLM(tokenizer=tok))
        pre.compile(learning_rate=3e-3)
    history = pre.fit(pl.data.text_dataset(texts * 2, tok, batch_size=16, sequence_length=24,
                                           pack=True, seed=0), epochs=2, verbose=0)
    return pre, history.history["loss"]


(one, one_loss), (two, two_loss) = pretrain(tf.distribute.get_strategy()), pretrain(mirrored)
results["mlm_loss"] = [one_loss, two_loss]
results["mlm_max_difference"] = max(float(np.abs(a - b).max())
                                    for a, b in zip(one.get_weights(), two.get_weights()))
json.dump(results, sys.stdout)
