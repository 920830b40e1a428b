"""What a compression step bought: size on disk, CPU latency and the metrics, in one call."""

from __future__ import annotations

import dataclasses
import gzip
import os
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from pretrainlib import validation

__all__ = ["Measurement", "measure"]


@dataclasses.dataclass(frozen=True)
class Measurement:
    """A model's size and speed (and metrics, given data).

    `size_bytes`: its weights as stored (an int8 kernel a byte per weight; no
    optimizer state, config or vocabulary); `gzip_bytes`:
    that file gzipped (exact zeros of a pruned model compress away); `latency_ms`: `{batch size: median milliseconds}` of a warm, compiled
    forward pass on this machine; `metrics`: the `pl.Evaluator`'s, when data was given.

    Examples:
        >>> import pretrainlib as pl
        >>> m = pl.compress.Measurement(size_bytes=4 * 2**20, gzip_bytes=2**20,
        ...                             latency_ms={1: 1.5}, metrics={}, parameters=10**6)
        >>> print(m)
        4.00 MiB on disk (1.00 MiB gzipped), 1,000,000 parameters; latency batch 1: 1.50 ms
    """

    size_bytes: int
    gzip_bytes: int
    latency_ms: dict
    metrics: dict
    parameters: int

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        latency = ", ".join(f"batch {b}: {ms:.2f} ms" for b, ms in self.latency_ms.items())
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in self.metrics.items())
        return (f"{self.size_bytes / 2**20:.2f} MiB on disk ({self.gzip_bytes / 2**20:.2f} "
                f"MiB gzipped), {self.parameters:,} parameters; latency {latency}"
                + (f"; {metrics}" if metrics else ""))


def measure(model: keras.Model, data=None, batch_sizes=(1, 32), repeats: int = 30,
            metrics=("accuracy", "macro_f1")) -> Measurement:
    """Measures `model`: the size of its weights on disk (raw and gzipped), CPU latency at each batch
    size (median of `repeats` timed calls after warm-up, on the inputs the backbone
    takes: tokenization is not timed) and, with `data`, `pl.Evaluator(metrics)`'s
    report.

    Args:
        model: a FineTuner or any Keras model that saves to `.keras`.
        data: a `tf.data.Dataset` of `(inputs, labels)` (e.g.
            `pl.data.text_dataset(texts, tok, labels=...)`): its first batch gives the
            latency inputs, the whole of it the metrics. Without it, latency inputs
            are zeros of the model's input shapes and there are no metrics.
        batch_sizes: the batch sizes to time.
        repeats: timed calls per batch size.
        metrics: names for `pl.Evaluator`, or None for none.

    Examples:
        >>> import keras, numpy as np, pretrainlib as pl
        >>> inputs = keras.Input((16,))
        >>> model = keras.Model(inputs, keras.layers.Dense(4)(inputs))
        >>> m = pl.compress.measure(model, batch_sizes=(1,), repeats=3)
        >>> m.size_bytes > m.gzip_bytes > 0, sorted(m.latency_ms)
        (True, [1])
    """
    validation.instance_of("model", model, keras.Model, "a built keras.Model")
    batch_sizes = [validation.positive_int("batch_sizes", b) for b in batch_sizes]
    repeats = validation.positive_int("repeats", repeats)
    if data is not None and not isinstance(data, tf.data.Dataset):
        raise TypeError("`data` must be a tf.data.Dataset of (inputs, labels) batches "
                        f"(e.g. pl.data.text_dataset(..., labels=...)). Received: "
                        f"{type(data).__name__}")
    size, packed = _sizes(model)
    sample = _sample_inputs(model, data)
    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    latency = {}
    for batch_size in batch_sizes:
        x = tf.nest.map_structure(lambda t: _rows(t, batch_size), sample)
        for _ in range(3):  # warm: traced, caches filled
            forward(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            tf.nest.map_structure(lambda t: t.numpy(), forward(x))
            times.append(time.perf_counter() - start)
        latency[batch_size] = float(np.median(times) * 1000)
    report = {}
    if data is not None and metrics:
        from pretrainlib.evaluation import Evaluator  # evaluation imports the models

        result = Evaluator(list(metrics)).evaluate(model, data)
        report = {name: float(value) for name, value in result.metrics.items()}
    parameters = int(sum(np.prod(w.shape) for w in model.weights))
    return Measurement(size, packed, latency, report, parameters)


def _sizes(model) -> tuple[int, int]:
    """Bytes of the model's weights as stored (each variable in its own dtype: an int8
    kernel takes a byte per weight, int4 half of one), raw and gzipped. Written with
    numpy because Keras's weights files carry the optimizer's state too."""
    folder = tempfile.mkdtemp(prefix="pl-measure-")
    try:
        path = os.path.join(folder, "weights.npz")
        np.savez(path, *[np.asarray(w.numpy()) for w in model.weights])
        with open(path, "rb") as f:
            raw = f.read()
        return len(raw), len(gzip.compress(raw, compresslevel=9))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _sample_inputs(model, data):
    if data is not None:
        return next(iter(data))[0]
    inputs = model.input
    return tf.nest.map_structure(
        lambda t: tf.zeros([1, *t.shape[1:]], dtype=t.dtype), inputs)


def _rows(tensor, count: int):
    """`count` rows of `tensor`, cycling its rows."""
    tensor = tf.convert_to_tensor(tensor)
    index = tf.range(count) % tf.shape(tensor)[0]
    return tf.gather(tensor, index)
