"""Picks the `tf.distribute` strategy for the hardware at hand.

Distribution is Keras's: build and compile a Pretrainer or FineTuner under
`strategy.scope()` and `fit` splits each global batch across the replicas, averages
gradients and aggregates metrics. This module only chooses the strategy.
"""

from __future__ import annotations

import os

import tensorflow as tf


def choice(tpu: bool, gpus: int) -> str:
    """The rule `auto` applies: `"tpu"` > `"mirrored"` (several GPUs) > `"one_gpu"` >
    `"default"` (CPU)."""
    if tpu:
        return "tpu"
    if gpus > 1:
        return "mirrored"
    return "one_gpu" if gpus == 1 else "default"


def _tpu_resolver():
    """A TPU cluster resolver when this machine has, or names, a TPU; else None.

    Only local signs are read (TPU devices, `TPU_NAME`, `COLAB_TPU_ADDR`), so that
    no metadata server is queried on machines without one.
    """
    if tf.config.list_physical_devices("TPU") or os.path.exists("/dev/accel0"):
        return tf.distribute.cluster_resolver.TPUClusterResolver(tpu="local")
    name = os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR")
    if name:
        return tf.distribute.cluster_resolver.TPUClusterResolver(tpu=name)
    return None


def auto(verbose: bool = True) -> tf.distribute.Strategy:
    """Returns a TPUStrategy if a TPU is attached, a MirroredStrategy over several
    GPUs, a OneDeviceStrategy on one GPU, and the default strategy otherwise; prints
    the choice when `verbose`.

    Batch sizes stay global: a `text_dataset(batch_size=256)` under 8 replicas gives
    each 32 examples per step.

    Examples:
        >>> import pretrainlib as pl
        >>> strategy = pl.distribute.auto(verbose=False)
        >>> with strategy.scope():
        ...     backbone = pl.backbones.ConvNet(widths=(8,))
        >>> strategy.num_replicas_in_sync >= 1
        True
    """
    resolver = _tpu_resolver()
    gpus = tf.config.list_logical_devices("GPU")
    kind = choice(resolver is not None, len(gpus))
    if kind == "tpu":
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        strategy = tf.distribute.TPUStrategy(resolver)
    elif kind == "mirrored":
        strategy = tf.distribute.MirroredStrategy([g.name for g in gpus])
    elif kind == "one_gpu":
        strategy = tf.distribute.OneDeviceStrategy(gpus[0].name)
    else:
        strategy = tf.distribute.get_strategy()
    if verbose:
        print(f"pl.distribute.auto: {type(strategy).__name__} with "
              f"{strategy.num_replicas_in_sync} replica(s) ({kind.replace('_', ' ')})")
    return strategy
