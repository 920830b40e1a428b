"""Compile defaults: the optimizer a string names, with its schedule and clipping;
"auto" losses and metrics; the compile arguments a saved model is compiled with."""

from __future__ import annotations

import json

import keras

from pretrainlib import validation
from pretrainlib.training.optimizers import adopt, with_lr_multipliers
from pretrainlib.training.schedules import WarmupLinearDecay

# Settings a string optimizer gets unless compile overrides them.
_OWN_SETTINGS = {"adamw": {"weight_decay": 0.01}, "sgd": {"momentum": 0.9}}


def optimizer_class(name: str) -> type:
    """The optimizer class a Keras optimizer string names (`"adam"`, `"rmsprop"`,
    `"lion"`, ...), as its per-group-rate twin; `"auto"` is `"adamw"`.

    Examples:
        >>> from pretrainlib.training.defaults import optimizer_class
        >>> optimizer_class("rmsprop").__name__, optimizer_class("auto").__name__
        ('RMSprop', 'AdamW')
    """
    if not isinstance(name, str):
        raise TypeError("`optimizer` must be a Keras optimizer string or instance. "
                        f"Received: optimizer of type {type(name).__name__}")
    try:
        keras_class = type(keras.optimizers.get(_key(name)))
    except ValueError:
        raise ValueError(
            "`optimizer` must name a Keras optimizer ('auto', 'adamw', 'adam', 'sgd', "
            "'rmsprop', 'lion', 'adafactor', ...) or be an optimizer instance. "
            f"Received: optimizer={name!r}") from None
    return with_lr_multipliers(keras_class)


def make_optimizer(
    optimizer: str | keras.optimizers.Optimizer = "auto",
    learning_rate: float | None = None,
    weight_decay: float | None = None,
    warmup_ratio: float = 0.1,
    clipnorm: float | None = 1.0,
    default_learning_rate: float = 1e-3,
) -> keras.optimizers.Optimizer:
    """The optimizer `compile` uses.

    A string (any Keras optimizer name, `"auto"` = `"adamw"`) builds that optimizer
    with a warmup + linear-decay schedule peaking at `learning_rate` (default
    `default_learning_rate`; 0.0 is a rate), gradient clipping at `clipnorm` and
    `weight_decay` (default: 0.01 for AdamW, the optimizer's own otherwise; `"sgd"`
    gets momentum 0.9). An instance is used as it is (its rate, schedule and
    clipping are yours) and gains per-group learning-rate multipliers in place.
    Either way freezing policies can scale each group's rate.

    Examples:
        >>> from pretrainlib.training import make_optimizer
        >>> opt = make_optimizer("rmsprop", learning_rate=3e-4)
        >>> type(opt).__name__, opt.clipnorm, hasattr(opt, "set_lr_multipliers")
        ('RMSprop', 1.0, True)
    """
    if isinstance(optimizer, keras.optimizers.Optimizer):
        for name, value in (("learning_rate", learning_rate), ("weight_decay", weight_decay)):
            if value is not None:
                raise ValueError(
                    f"`{name}` is only used with a string `optimizer`; set it on the "
                    f"optimizer instance instead. Received: {name}={value}")
        return adopt(optimizer)
    cls = optimizer_class(optimizer)
    if learning_rate is None:
        learning_rate = default_learning_rate
    validation.non_negative_float("learning_rate", learning_rate)
    validation.unit_interval("warmup_ratio", warmup_ratio)
    if clipnorm is not None:
        validation.positive_float("clipnorm", clipnorm)
    settings = dict(_OWN_SETTINGS.get(_key(optimizer), {}))
    if weight_decay is not None:
        settings["weight_decay"] = validation.non_negative_float("weight_decay", weight_decay)
    schedule = WarmupLinearDecay(learning_rate, warmup_ratio=warmup_ratio)
    return cls(learning_rate=schedule, clipnorm=clipnorm, **settings)


def _key(name: str) -> str:
    return "adamw" if name.lower() == "auto" else name.lower()


# === compile's arguments, resolved and remembered ===
_FORMAT = 2  # "auto" defaults; pretrainlib 0.1 wrote None for them
KERAS_SETTINGS = ("loss", "loss_weights", "metrics", "weighted_metrics", "run_eagerly",
                  "steps_per_execution", "jit_compile", "auto_scale_loss")


def keras_settings(model, arguments: dict) -> dict:
    """Keras's compile arguments but the optimizer, each `"auto"` loss or metric
    replaced by what `model` declares (fresh objects every call)."""
    declared = {"loss": model.default_loss, "metrics": model.default_metrics,
                "weighted_metrics": model.default_weighted_metrics}
    return {name: declared[name]() if name in declared and _is_auto(arguments[name])
            else arguments[name] for name in KERAS_SETTINGS}


def remember(arguments: dict) -> str:
    """`compile`'s arguments as JSON, for the saved model's compile config."""
    return json.dumps(keras.saving.serialize_keras_object({**arguments, "format": _FORMAT}))


def recall(remembered: str) -> dict:
    """`compile`'s arguments back from `remember` (or a model saved by version 0.1)."""
    arguments = {k: keras.saving.deserialize_keras_object(v)
                 for k, v in json.loads(remembered).items()}
    if arguments.pop("format", 1) == 1:  # pretrainlib 0.1: None meant the default
        for name in ("loss", "metrics", "weighted_metrics", "optimizer"):
            if arguments.get(name) is None:
                arguments[name] = "auto"
    return arguments


def _is_auto(value) -> bool:
    return isinstance(value, str) and value == "auto"
