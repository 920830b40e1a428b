"""Backbone features computed once, for epochs in which only the head trains.

When a policy freezes the whole backbone (a linear probe, or the first stage of
`FreezeThenUnfreeze` fitted on its own), every epoch would push the same inputs
through the same frozen backbone again. Computing its output once and training the
head on it gives the same model (the head's own dropout still varies per step) at a
fraction of the cost.
"""

from __future__ import annotations

import keras
import tensorflow as tf

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


def random_layers(model: keras.Model) -> list[str]:
    """Names of the layers of `model` whose training-mode output is random."""
    found = []
    for layer in model._flatten_layers(include_self=False):
        if type(layer).__name__.startswith("Random"):
            found.append(layer.name)
            continue
        for cls, attribute in _RANDOM_WHEN.items():
            if isinstance(layer, cls) and getattr(layer, attribute, 0):
                found.append(layer.name)
    return found


def reshuffles(dataset: tf.data.Dataset) -> bool:
    """Whether two passes over `dataset` start with different batches."""
    first, second = (next(iter(dataset)) for _ in range(2))
    return not all(bool(tf.reduce_all(a == b))
                   for a, b in zip(tf.nest.flatten(first), tf.nest.flatten(second)))


def cache_features(network: keras.Model, dataset: tf.data.Dataset,
                   select) -> tf.data.Dataset:
    """One pass of `dataset` through `network` (inference mode) into a dataset of
    `(select(features), labels, ...)` with the same batch size; reshuffled every
    epoch if `dataset` itself reshuffles, in its order otherwise."""
    shuffle = reshuffles(dataset)
    # No Python control flow inside: skip AutoGraph's source parsing.
    forward = tf.function(lambda inputs: select(network(inputs, training=False)),
                          reduce_retracing=True, autograph=False)
    features, others, batch_size = [], [], None
    for batch in dataset:
        inputs, *rest = batch
        features.append(forward(inputs))
        others.append(rest)
        if batch_size is None:
            batch_size = int(tf.shape(tf.nest.flatten(inputs)[0])[0])
    columns = [tf.nest.map_structure(lambda *parts: tf.concat(parts, axis=0), *features)]
    columns += [tf.concat(list(parts), axis=0) for parts in zip(*others)]
    cached = tf.data.Dataset.from_tensor_slices(tuple(columns))
    if shuffle:
        cached = cached.shuffle(int(cached.cardinality()), reshuffle_each_iteration=True)
    return cached.batch(batch_size).prefetch(tf.data.AUTOTUNE)
