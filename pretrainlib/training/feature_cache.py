"""Backbone features computed once, for epochs in which only the head trains.

When a policy freezes the whole backbone (a linear probe, or the first stage of
`FreezeThenUnfreeze` fitted on its own), every epoch would push the same inputs
through the same frozen backbone again. Computing its output once and training the
head on it gives the same model (the head's own dropout still varies per step) at a
fraction of the cost. The head trains inside `HeadTrainer`, a Keras model of its
own that shares the FineTuner's head and optimizer; your callbacks, checkpoints and
the History still see the FineTuner.

That is only the same model when the backbone's inputs are the same every epoch:
not with dropout in the backbone, and not when the dataset itself draws random
numbers (augmentation). `random_data` looks for random ops in the dataset's graph.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from tensorflow.core.framework import graph_pb2

from pretrainlib import keras_compat
from pretrainlib.epochs import Examples, source_of
from pretrainlib.training.train_step import skipping_train_step

# Layers that draw random numbers in training mode, with the attribute that
# switches them off at 0. Classes named "Random..." are Keras's augmentations.
_RANDOM_WHEN = {
    keras.layers.Dropout: "rate",
    keras.layers.SpatialDropout1D: "rate",
    keras.layers.SpatialDropout2D: "rate",
    keras.layers.SpatialDropout3D: "rate",
    keras.layers.GaussianDropout: "rate",
    keras.layers.AlphaDropout: "rate",
    keras.layers.GaussianNoise: "stddev",
}
# Dataset ops that only reorder examples (the cache reshuffles the same way).
_ORDER_ONLY = {"ShuffleDataset", "ShuffleDatasetV2", "ShuffleDatasetV3",
               "ShuffleAndRepeatDataset", "ShuffleAndRepeatDatasetV2"}


def random_layers(model: keras.Model) -> list[str]:
    """Names of the layers of `model` whose training-mode output is random."""
    found = []
    for layer in keras_compat.sublayers(model):
        if type(layer).__name__.startswith("Random"):
            found.append(layer.name)
            continue
        for cls, attribute in _RANDOM_WHEN.items():
            if isinstance(layer, cls) and getattr(layer, attribute, 0):
                found.append(layer.name)
    return found


def random_data(dataset: tf.data.Dataset) -> bool | None:
    """Whether `dataset` draws random numbers beyond its order (augmentation, random
    crops, noise, per-epoch packing): True, False, or None when its graph cannot be
    read (e.g. `from_generator`), in which case nobody can tell.

    Examples:
        >>> import tensorflow as tf
        >>> from pretrainlib.training.feature_cache import random_data
        >>> numbers = tf.data.Dataset.range(8)
        >>> random_data(numbers.shuffle(8)), random_data(numbers.map(
        ...     lambda x: x + tf.random.uniform([], maxval=2, dtype="int64")))
        (False, True)
    """
    try:  # tf.data has no public way to list a dataset's ops
        graph = graph_pb2.GraphDef.FromString(dataset._as_serialized_graph(
            external_state_policy=tf.data.experimental.ExternalStatePolicy.IGNORE).numpy())
    except (tf.errors.OpError, ValueError, TypeError):
        return None
    ops = {node.op for node in graph.node}
    ops |= {node.op for function in graph.library.function for node in function.node_def}
    if "PyFunc" in ops or "EagerPyFunc" in ops or "GeneratorDataset" in ops:
        return None
    return any("Random" in op or "Multinomial" in op or "TruncatedNormal" in op
               for op in ops - _ORDER_ONLY)


def _draws(dataset: tf.data.Dataset) -> bool | None:
    source = source_of(dataset)
    return source.draws if source is not None else random_data(dataset)


def reshuffles(dataset: tf.data.Dataset) -> bool:
    """Whether two passes over `dataset` start with different batches."""
    first, second = (next(iter(dataset)) for _ in range(2))
    return not all(bool(tf.reduce_all(a == b))
                   for a, b in zip(tf.nest.flatten(first), tf.nest.flatten(second)))


def cache_features(network: keras.Model, dataset: tf.data.Dataset,
                   select) -> tf.data.Dataset:
    """One pass of `dataset` through `network` (inference mode) into a dataset of
    `(select(features), labels, ...)` with the same batch size; reshuffled every
    epoch if `dataset` itself reshuffles, in its order otherwise. In-memory
    examples (`pl.epochs.Examples`: the pipelines of `pl.data`, arrays) keep their
    epoch orders: every epoch's batches hold the same examples as without the cache."""
    source = source_of(dataset)
    if isinstance(source, Examples):
        columns, _ = _features(network, source.ordered(), select)
        return source.with_columns(columns).dataset()
    shuffle = reshuffles(dataset)
    columns, batch_size = _features(network, dataset, select)
    cached = tf.data.Dataset.from_tensor_slices(columns)
    if shuffle:
        cached = cached.shuffle(int(cached.cardinality()), reshuffle_each_iteration=True)
    return cached.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _features(network: keras.Model, dataset: tf.data.Dataset, select) -> tuple:
    """`((select(network(inputs)), labels, ...), batch size)` over one pass of
    `dataset`, the columns holding examples."""
    # No Python control flow inside: skip AutoGraph's source parsing.
    forward = tf.function(lambda inputs: select(network(inputs, training=False)),
                          reduce_retracing=True, autograph=False)
    features, others = [], []
    for batch in dataset:
        inputs, *rest = batch
        features.append(forward(inputs))
        others.append(rest)
    columns = [tf.nest.map_structure(lambda *parts: tf.concat(parts, axis=0), *features)]
    columns += [tf.nest.map_structure(lambda *p: tf.concat(p, axis=0), *parts)
                for parts in zip(*others)]  # labels may be a dict (several heads)
    batch_size = int(tf.shape(tf.nest.flatten(features[0])[0])[0])
    return tuple(columns), batch_size


def reason_not_to_cache(cache, policy, groups: list, epochs, network: keras.Model,
                        datasets) -> str | None:
    """Why a FineTuner's `fit` over these absolute `epochs` cannot train its head on
    cached features (`cache` is its `cache_features` argument), or None.

    `datasets` are `(argument name, dataset or None)` pairs. With `cache=True` a
    reason is an error.
    """
    if cache is False:
        return "cache_features=False"
    if policy.unit == "step":  # which steps the call spans is not known here
        stages = set(range(policy.num_stages(groups)))
    else:
        stages = {policy.stage_index(e, groups) for e in epochs}
    training = sorted({g for stage in stages for g, plan in policy.plan(stage, groups).items()
                       if plan.trains and g != "head"})
    reason, random = None, random_layers(network)
    if training:
        reason = f"groups {training} train in these epochs"
    elif random:
        reason = f"the backbone has random layers {random}"
    for name, data in datasets:
        drawn = None if data is None or reason else _draws(data)
        if drawn:
            reason = f"`{name}` draws random numbers (augmentation?) every epoch"
        elif data is not None and drawn is None and reason is None:
            reason = f"it cannot be told whether `{name}` draws random numbers"
    if reason is not None and cache is True:
        raise ValueError(f"`cache_features=True` needs a frozen, deterministic backbone and "
                         f"data, but {reason}. Use cache_features='auto' or False.")
    return reason


def fit_head(owner: keras.Model, run, features: keras.Model, validation_data=None,
             **kwargs):
    """Runs `run` of the FineTuner `owner` as head-only training on the features
    `features` (the FineTuner's inputs -> what its head reads) computes once."""
    feature = getattr(owner.head, "feature", None)

    def select(outputs):  # only what the head reads is cached
        if isinstance(outputs, dict) and feature in outputs:
            return {feature: outputs[feature]}
        return outputs

    run.x = cache_features(features, run.x, select)
    if validation_data is not None:
        validation_data = cache_features(features, validation_data, select)
    return run.fit(trainer=HeadTrainer(owner, run.x.element_spec[0]),
                   validation_data=validation_data, **kwargs)


class HeadTrainer(keras.Model):
    """A FineTuner's head as a Keras model of its own, trained on cached features.

    It shares the head's layers and the FineTuner's optimizer (so steps, slots and
    the learning-rate schedule go on as if the FineTuner had trained), compiles
    with fresh copies of the FineTuner's loss and metrics, and forwards
    `stop_training` to the FineTuner, whose callbacks (EarlyStopping included)
    drive the run (and hold the History).

    Args:
        owner: the `pl.FineTuner` whose head trains.
        features: the element spec of what the head reads.

    Examples:
        >>> import tensorflow as tf, pretrainlib as pl
        >>> from pretrainlib.training.feature_cache import HeadTrainer
        >>> ft = pl.FineTuner(pl.backbones.TextEncoder(50, num_layers=1, hidden_dim=16),
        ...                   pl.heads.Classifier(2))
        >>> ft.compile()
        >>> trainer = HeadTrainer(ft, {"pooled_output": tf.TensorSpec([None, 16])})
        >>> trainer.layers[-1] is ft.head, trainer.optimizer is ft.optimizer
        (True, True)
    """

    def __init__(self, owner: keras.Model, features):
        def entry(spec, name=None):
            return keras.Input(shape=spec.shape[1:], dtype=spec.dtype, name=name)

        inputs = ({name: entry(spec, name) for name, spec in features.items()}
                  if isinstance(features, dict) else entry(features))
        object.__setattr__(self, "_owner", owner)  # not tracked: no second copy of it
        super().__init__(inputs, owner.head(inputs), name=f"{owner.name}_head")
        settings = owner.compile_settings()
        super().compile(optimizer=owner.optimizer, **settings)

    @property
    def stop_training(self) -> bool:
        return self._owner.stop_training

    @stop_training.setter
    def stop_training(self, value: bool) -> None:
        self._owner.stop_training = value

    @property
    def history(self):  # the FineTuner's callbacks hold the History
        return self._owner.history

    def train_step(self, data):
        if getattr(self._owner, "skip_nonfinite", False):
            return skipping_train_step(self, data)
        return super().train_step(data)
