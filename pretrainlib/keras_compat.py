"""Every use of Keras's private API, in one place, behind a version check.

pretrainlib needs a few things Keras does not expose: a model's nested layers, a
layer's seed generators, an optimizer's variable index, and four overrides of
private trainer and optimizer methods (each explained where it is defined). They
were checked against the Keras versions in `VERIFIED`; on any other version
importing pretrainlib fails here, naming what to install, instead of training
subtly wrong. Every other module calls these helpers, never `keras.src` or a
`_private` Keras name.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import keras
import tensorflow as tf

VERIFIED = ((3, 15),)  # (major, minor) versions whose private API this file was checked on


def _check_version(version: str) -> None:
    major_minor = tuple(int(part) for part in version.split(".")[:2])
    if major_minor not in VERIFIED:
        verified = ", ".join(f"{a}.{b}" for a, b in VERIFIED)
        raise ImportError(
            f"pretrainlib relies on private Keras internals checked on Keras {verified}; "
            f"Keras {version} is installed. Install a checked version "
            f"(pip install 'keras>={VERIFIED[0][0]}.{VERIFIED[0][1]},"
            f"<{VERIFIED[-1][0]}.{VERIFIED[-1][1] + 1}') or a pretrainlib release made "
            "for your Keras."
        )


_check_version(keras.__version__)

# Imported only after the version check, so an unchecked Keras fails above instead.
from keras.src.backend.tensorflow.trainer import (  # noqa: E402
    _collective_all_reduce_multi_worker,
)
from keras.src.backend import random_seed_dtype  # noqa: E402
from keras.src.export.tfsm_layer import _list_variables_used_by_fns  # noqa: E402
from keras.src.losses.loss import (  # noqa: E402
    scale_loss_for_distribution,
    unscale_loss_for_distribution,
)

__all__ = ["OptimizerOverrides", "TrainerOverrides", "cached_self_attention", "compute_loss",
           "is_multi_worker", "keras_hub_build_cache", "transformer_encoder_step",
           "loss_tracker", "lora_base_weight", "moving_average_update", "seed_generators",
           "saved_model_variables", "seeds_drawn_from", "sublayers", "track_variable",
           "unscale_loss", "variable_index"]


# === Reading private state ===
def sublayers(layer: keras.layers.Layer, include_self: bool = False) -> list:
    """Every layer nested in `layer` (depth first), optionally `layer` itself."""
    return list(layer._flatten_layers(include_self=include_self, recursive=True))


def seed_generators(layer: keras.layers.Layer) -> list:
    """The `keras.random.SeedGenerator`s a layer owns (dropout, random masking, ...)."""
    return list(getattr(layer, "_seed_generators", []))


@contextlib.contextmanager
def seeds_drawn_from(layers: list, next_seed) -> Iterator[None]:
    """Inside, every `keras.random.SeedGenerator` of `layers` (and their sublayers)
    returns `next_seed()` instead of advancing its state variable.

    Why: a Keras augmentation layer called in `tf.data` draws from its generator's
    state variable, which parallel calls advance in whatever order they run and no
    checkpoint holds. Traced inside this context, its draws become stateless ones
    from seeds the caller derives from the example's position, so they replay.
    """
    swapped = []
    for layer in [inner for outer in layers for inner in sublayers(outer, include_self=True)]:
        for name, value in list(vars(layer).items()):
            if isinstance(value, keras.random.SeedGenerator):
                swapped.append((layer, name, value))
                object.__setattr__(layer, name, _StatelessSeedGenerator(next_seed))
    try:
        yield
    finally:
        for layer, name, value in reversed(swapped):
            object.__setattr__(layer, name, value)


class _StatelessSeedGenerator(keras.random.SeedGenerator):
    # Keras's random ops accept a SeedGenerator and call its `next()`; this one holds
    # no state variable (its parent's __init__, which makes one, is not run).
    def __init__(self, next_seed):  # noqa -- deliberately no super().__init__
        self._next = next_seed

    def next(self, ordered=True):
        return tf.cast(self._next(), random_seed_dtype())


def track_variable(layer: keras.layers.Layer, variable: keras.Variable) -> None:
    """Makes `layer` own `variable` (in its weights, saved with it)."""
    layer._track_variable(variable)


def variable_index(optimizer: keras.optimizers.Optimizer, variable) -> int:
    """The position of `variable` among the variables `optimizer` was built on."""
    return optimizer._get_variable_index(variable)


def compute_loss(model: keras.Model, x, y, y_pred, sample_weight):
    """The loss of a training step as Keras's own step computes it (losses added by
    layers included)."""
    return model._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                               training=True)


def loss_tracker(model: keras.Model) -> keras.metrics.Metric:
    """The metric behind the `loss` that `fit` reports."""
    return model._loss_tracker


def lora_base_weight(layer: keras.layers.Layer) -> keras.Variable:
    """The kernel (or embedding table) a LoRA-capable layer keeps apart from its
    low-rank update (its public `kernel` property returns the merged sum)."""
    return layer._kernel if hasattr(layer, "_kernel") else layer._embeddings


def masked_lm_head(model: keras.Model):
    """The KerasHub `MaskedLMHead` inside `model` (e.g. a masked-LM Pretrainer)."""
    import keras_hub

    heads = [layer for layer in sublayers(model, include_self=True)
             if isinstance(layer, keras_hub.layers.MaskedLMHead)]
    if len(heads) != 1:
        raise ValueError(
            f"`model` must hold one masked-LM head (a pl.Pretrainer with "
            f"pl.objectives.MaskedLM); {model.name!r} holds {len(heads)}.")
    return heads[0]


def masked_lm_parts(head) -> tuple:
    """`(dense, layer_norm, output_kernel [width, vocab], output_bias)` of a KerasHub
    `MaskedLMHead` (its sublayers are private); the kernel is the tied token
    embedding's transpose when it has one."""
    embedding = head.token_embedding
    if embedding is None:
        kernel = head._kernel
    elif getattr(embedding, "tie_weights", True):
        kernel = keras.ops.transpose(embedding.embeddings)
    else:
        kernel = embedding.reverse_embeddings
    return head._intermediate_dense, head._intermediate_layer_norm, kernel, head._bias


def is_multi_worker(strategy) -> bool:
    """Whether `strategy` all-reduces across workers (Keras's own test)."""
    return _collective_all_reduce_multi_worker(strategy)


def scale_loss(loss):
    """A replica's share of a loss that Keras's all-reduce sums (Keras's rule for the
    losses it computes itself)."""
    return scale_loss_for_distribution(loss)


def unscale_loss(loss):
    """A replica's loss as one device would report it (Keras's train step's rule)."""
    return unscale_loss_for_distribution(loss)


def moving_average_update(targets: list, sources: list, decay) -> None:
    """`target = decay * target + (1 - decay) * source` for each pair, also inside a
    distribution strategy's replica context (as Keras's optimizer updates its own
    weight averages: a merge call, then the strategy's `update` on every copy)."""
    def update(strategy, pairs):
        for target, source in pairs:
            strategy.extended.update(
                target, lambda t, s: t.assign(decay * t + (1 - decay) * s),
                args=(source,), group=False)

    pairs = [(t.value if isinstance(t, keras.Variable) else t,
              s.value if isinstance(s, keras.Variable) else s)
             for t, s in zip(targets, sources)]
    tf.__internal__.distribute.interim.maybe_merge_call(update, tf.distribute.get_strategy(),
                                                        pairs)


def cached_self_attention(layer: keras.layers.MultiHeadAttention, x, cache, index, mask):
    """`layer` (a Keras `MultiHeadAttention`) attending from `x` `[batch, q, dim]` to
    the key/value cache `[batch, 2, length, heads, head_dim]`, after writing `x`'s
    keys and values into it at `index`; returns `(output, cache)`. KerasHub's
    `CachedMultiHeadAttention.call`, for the plain attention layer that its
    `TransformerEncoder` blocks hold (they have no cache of their own)."""
    query = layer._query_dense(x)
    start = [0, index, 0, 0]
    key = keras.ops.slice_update(cache[:, 0], start, layer._key_dense(x))
    value = keras.ops.slice_update(cache[:, 1], start, layer._value_dense(x))
    output, _ = layer._compute_attention(query=query, key=key, value=value,
                                         attention_mask=mask)
    return layer._output_dense(output), keras.ops.stack((key, value), axis=1)


def transformer_encoder_step(block, x, cache, index, mask):
    """A KerasHub `TransformerEncoder` block in inference on `x` with a key/value
    cache (see `cached_self_attention`): its own `call`, pre- or post-LayerNorm, with
    the attention reading the cache. Returns `(output, cache)`."""
    residual = x
    if block.normalize_first:
        x = block._self_attention_layer_norm(x)
    x, cache = cached_self_attention(block._self_attention_layer, x, cache, index, mask)
    x = x + residual
    if not block.normalize_first:
        x = block._self_attention_layer_norm(x)
    residual = x
    if block.normalize_first:
        x = block._feedforward_layer_norm(x)
    x = block._feedforward_output_dense(block._feedforward_intermediate_dense(x)) + residual
    if not block.normalize_first:
        x = block._feedforward_layer_norm(x)
    return x, cache


def keras_hub_build_cache(task, token_ids):
    """The key/value cache of a KerasHub `CausalLM` after a forward pass over
    `token_ids` (its `_build_cache`, which its own `generate` calls)."""
    return task._build_cache(token_ids)[1]


def saved_model_variables(functions) -> tuple[list, list]:
    """`(trainable, other)` variables the SavedModel `functions` read (as TFSMLayer)."""
    return _list_variables_used_by_fns(functions)


# === Overrides of private methods ===
class TrainerOverrides:
    """Mixin placed before `keras.Model`: two trainer methods replaced.

    Examples:
        >>> import keras
        >>> from pretrainlib import keras_compat
        >>> class Model(keras_compat.TrainerOverrides, keras.Model):
        ...     pass
        >>> inputs = keras.Input((2,))
        >>> Model(inputs, keras.layers.Dense(1)(inputs)).output_shape
        (None, 1)
    """

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Under a strategy, Keras's TF trainer builds metrics from a batch it reads
        # off a first iterator and then discards. That extra pass advances every
        # per-pass draw upstream (`shuffle`, packing order), so the run would train
        # on other batches than the same run on one device. The data's specs are
        # all the symbolic build needs.
        # A dataset distributed per worker (`distribute_datasets_from_function`)
        # carries its workers' element spec as `per_worker_spec`.
        if iterator is not None and data_batch is None:
            adapter = getattr(iterator, "data_adapter", None)
            dataset = adapter.get_tf_dataset() if adapter else None
            spec = getattr(dataset, "per_worker_spec", None)
            if spec is None and isinstance(dataset, tf.data.Dataset):
                spec = dataset.element_spec
            if spec is not None:
                iterator, data_batch = None, spec
        if data_batch is not None:
            data_batch = self._symbolic_batch(data_batch)
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def _symbolic_batch(self, data_batch):
        """What of a batch the model is called on, for the symbolic build (a model
        whose batches carry more, such as a semi-supervised FineTuner's, says)."""
        return data_batch

    def _make_function(self, step_function):
        # Keras's TF trainer reduces a multi-worker step's logs with
        # `strategy.reduce("MEAN", v, axis=0)`, which fails on scalars
        # (keras-team/keras#20585). Give each replica's logs that axis: the reduce
        # then averages them over all replicas of all workers.
        if is_multi_worker(self.distribute_strategy):
            step = step_function

            def step_function(data):
                return tf.nest.map_structure(lambda v: tf.expand_dims(v, 0), step(data))

        return super()._make_function(step_function)


class OptimizerOverrides:
    """Mixin placed before a `keras.optimizers.Optimizer`: gradient clipping replaced.

    Examples:
        >>> import keras
        >>> from pretrainlib import keras_compat
        >>> class SGD(keras_compat.OptimizerOverrides, keras.optimizers.SGD):
        ...     pass
        >>> SGD(0.1, clipnorm=1.0).clipnorm
        1.0
    """

    def _clip_gradients(self, grads):
        # Keras clips each replica's own gradient and sums the replicas afterwards, so
        # under a distribution strategy `clipnorm` bounds a quantity that depends on
        # the replica count and one device's weights are not reproduced. Clip the
        # all-reduced gradient instead, and hand each replica 1/n of it: Keras's later
        # all-reduce sums the n shares back to the clipped global gradient.
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context is not None else 1
        if replicas == 1 or not (self.clipnorm or self.global_clipnorm or self.clipvalue):
            return super()._clip_gradients(grads)
        present = [i for i, g in enumerate(grads) if g is not None]
        summed = context.all_reduce(tf.distribute.ReduceOp.SUM, [grads[i] for i in present])
        clipped = super()._clip_gradients(summed)
        shares = list(grads)
        for i, g in zip(present, clipped):
            shares[i] = (tf.IndexedSlices(g.values / replicas, g.indices, g.dense_shape)
                         if isinstance(g, tf.IndexedSlices) else g / replicas)
        return shares


def _check_private_api() -> None:
    needed = {keras.layers.Layer: ("_flatten_layers", "_track_variable"),
              keras.Model: ("_maybe_symbolic_build", "_make_function", "_compute_loss"),
              keras.optimizers.Optimizer: ("_clip_gradients", "_get_variable_index")}
    missing = [f"{cls.__name__}.{name}" for cls, names in needed.items() for name in names
               if not hasattr(cls, name)]
    if missing:
        raise ImportError(f"Keras {keras.__version__} lacks private methods pretrainlib "
                          f"overrides: {missing}. Install a Keras version in {VERIFIED}.")


_check_private_api()
