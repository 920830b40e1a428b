"""A small ResNet-style ConvNet whose defaults suit small datasets."""

from __future__ import annotations

import keras
import keras_hub

from pretrainlib import validation

NORMS = ("batch", "group", None)


def _norm(norm: str | None, momentum: float, name: str, dtype):
    if norm == "batch":
        # Synchronized: under a distribution strategy the statistics are those of the
        # global batch, as on one device (small per-replica batches would otherwise
        # normalize with noisy statistics, and N replicas would train another model).
        return keras.layers.BatchNormalization(momentum=momentum, synchronized=True,
                                               dtype=dtype, name=name)
    if norm == "group":
        return keras.layers.GroupNormalization(groups=8, dtype=dtype, name=name)
    return keras.layers.Identity(dtype=dtype, name=name)


@keras.saving.register_keras_serializable(package="pretrainlib")
class ConvNormAct(keras.layers.Layer):
    """Convolution, normalization, then ReLU (unless `activation=False`).

    `zero_init=True` starts the normalization's scale at zero, so the layer
    outputs zeros until it learns otherwise (for the last layer of a residual
    branch).

    Examples:
        >>> import numpy as np
        >>> from pretrainlib.backbones.conv_net import ConvNormAct
        >>> tuple(ConvNormAct(8, strides=2)(np.zeros((1, 28, 28, 1), "float32")).shape)
        (1, 14, 14, 8)
    """

    def __init__(self, filters: int, kernel_size: int = 3, strides: int = 1,
                 norm: str | None = "batch", norm_momentum: float = 0.9,
                 activation: bool = True, zero_init: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.strides = filters, kernel_size, strides
        self.norm, self.norm_momentum = norm, norm_momentum
        self.activation, self.zero_init = activation, zero_init
        self.conv = keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same",
                                        use_bias=norm is None, dtype=self.dtype_policy,
                                        name="conv")
        self.normalization = _norm(norm, norm_momentum, "norm", self.dtype_policy)
        if zero_init and norm is not None:
            self.normalization.gamma_initializer = keras.initializers.Zeros()

    def build(self, input_shape):
        self.conv.build(input_shape)
        self.normalization.build(self.conv.compute_output_shape(input_shape))

    def call(self, x, training=None):
        x = self.normalization(self.conv(x), training=training)
        return keras.ops.relu(x) if self.activation else x

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "kernel_size": self.kernel_size,
                       "strides": self.strides, "norm": self.norm,
                       "norm_momentum": self.norm_momentum, "activation": self.activation,
                       "zero_init": self.zero_init})
        return config


@keras.saving.register_keras_serializable(package="pretrainlib")
class ResidualBlock(keras.layers.Layer):
    """ResNet basic block: two 3x3 conv + norm, added to a (projected) shortcut.

    `zero_init=True` starts the last normalization's scale at zero (Goyal et al.,
    2017), so the block starts as the identity, which helps very deep stacks. It is
    off by default: in an exploratory probe (uncommitted, so no figures here) a
    shallow ConvNet trained for a few dozen steps on Fashion-MNIST learned markedly
    slower with it.

    Examples:
        >>> import numpy as np
        >>> from pretrainlib.backbones.conv_net import ResidualBlock
        >>> x = np.random.rand(1, 8, 8, 4).astype("float32")
        >>> block = ResidualBlock(4, zero_init=True)
        >>> bool(np.allclose(block(x), np.maximum(x, 0)))  # starts as the identity
        True
    """

    def __init__(self, filters: int, strides: int = 1, norm: str | None = "batch",
                 norm_momentum: float = 0.9, zero_init: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.strides = filters, strides
        self.norm, self.norm_momentum = norm, norm_momentum
        self.zero_init = zero_init
        options = dict(norm=norm, norm_momentum=norm_momentum, dtype=self.dtype_policy)
        self.branch_1 = ConvNormAct(filters, strides=strides, name="branch_1", **options)
        self.branch_2 = ConvNormAct(filters, activation=False, zero_init=zero_init,
                                    name="branch_2", **options)
        self.shortcut = None
        self._options = options

    def build(self, input_shape):
        self.branch_1.build(input_shape)
        shape = self.branch_1.compute_output_shape(input_shape)
        self.branch_2.build(shape)
        if self.strides != 1 or input_shape[-1] != self.filters:
            self.shortcut = ConvNormAct(self.filters, kernel_size=1, strides=self.strides,
                                        activation=False, name="shortcut", **self._options)
            self.shortcut.build(input_shape)

    def call(self, x, training=None):
        y = self.branch_2(self.branch_1(x, training=training), training=training)
        if self.shortcut is not None:
            x = self.shortcut(x, training=training)
        return keras.ops.relu(x + y)

    def compute_output_shape(self, input_shape):
        return self.branch_1.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "strides": self.strides,
                       "norm": self.norm, "norm_momentum": self.norm_momentum,
                       "zero_init": self.zero_init})
        return config


@keras.saving.register_keras_serializable(package="pretrainlib")
class ConvNet(keras_hub.models.Backbone):
    """Small ResNet-style ConvNet: images in, a feature map and pooled features out.

    A 3x3 stem, then one stage per entry of `widths`, each of `blocks_per_stage`
    residual blocks; every stage after the first halves the resolution. Defaults
    are chosen for small data: BatchNorm momentum 0.9, not Keras's 0.99, whose
    moving statistics never settle in the few hundred steps a few-label run takes
    (a scratch model then evaluates near chance); `norm="group"` removes batch
    statistics altogether; residual branches start at full scale, not zero (see
    `ResidualBlock`).

    Inputs: float images `[batch, height, width, channels]`, scaled to [0, 1]
    (`pl.data.image_dataset` does that).
    Outputs: `{"feature_map": [batch, height / 2**(stages-1), ..., widths[-1]],
    "pooled_output": [batch, widths[-1]]}` (global average of the feature map).

    Layer groups, bottom to top: `stem`, `stage_0` ... `stage_{len(widths)-1}`.

    Args:
        input_shape: `(height, width, channels)` of the images.
        widths: channels of each stage.
        blocks_per_stage: residual blocks in each stage.
        norm: `"batch"`, `"group"` (8 groups) or None.
        norm_momentum: BatchNorm moving-average momentum.

    Examples:
        >>> import numpy as np, pretrainlib as pl
        >>> net = pl.backbones.ConvNet(input_shape=(28, 28, 1), widths=(8, 16))
        >>> out = net(np.zeros((2, 28, 28, 1), "float32"))
        >>> tuple(out["feature_map"].shape), tuple(out["pooled_output"].shape)
        ((2, 14, 14, 16), (2, 16))
        >>> list(net.layer_groups)
        ['stem', 'stage_0', 'stage_1']
    """

    def __init__(
        self,
        input_shape=(28, 28, 1),
        widths=(32, 64, 128),
        blocks_per_stage: int = 1,
        norm: str | None = "batch",
        norm_momentum: float = 0.9,
        dtype=None,
        **kwargs,
    ):
        input_shape = _image_shape(input_shape)
        widths = tuple(widths)
        if not widths:
            raise ValueError("`widths` must list at least one stage width. Received: widths=()")
        for width in widths:
            validation.positive_int("widths", width)
        validation.positive_int("blocks_per_stage", blocks_per_stage)
        validation.one_of("norm", norm, NORMS)
        validation.open_unit_interval("norm_momentum", norm_momentum)
        if norm == "group" and any(width % 8 for width in widths):
            raise ValueError(
                f"`norm='group'` uses 8 groups, so every width must be a multiple of 8. "
                f"Received: widths={widths}"
            )
        options = dict(norm=norm, norm_momentum=norm_momentum, dtype=dtype)

        # === Layers ===
        self.stem = ConvNormAct(widths[0], name="stem", **options)
        self.stages = [
            [ResidualBlock(width, strides=2 if (s > 0 and b == 0) else 1,
                           name=f"stage_{s}_block_{b}", **options)
             for b in range(blocks_per_stage)]
            for s, width in enumerate(widths)
        ]
        self.pool = keras.layers.GlobalAveragePooling2D(dtype=dtype, name="pool")

        # === Functional Model ===
        images = keras.Input(shape=input_shape, name="images")
        x = self.stem(images)
        for stage in self.stages:
            for block in stage:
                x = block(x)
        super().__init__(inputs=images,
                         outputs={"feature_map": x, "pooled_output": self.pool(x)},
                         dtype=dtype, **kwargs)

        # === Config ===
        self.image_shape = input_shape
        self.widths = widths
        self.blocks_per_stage = blocks_per_stage
        self.norm = norm
        self.norm_momentum = norm_momentum

    @property
    def layer_groups(self) -> dict[str, list[keras.layers.Layer]]:
        """Ordered groups of layers, bottom to top, for freezing policies."""
        groups = {"stem": [self.stem]}
        for s, stage in enumerate(self.stages):
            groups[f"stage_{s}"] = list(stage)
        return groups

    def get_config(self):
        config = super().get_config()
        config.update({
            "input_shape": self.image_shape,
            "widths": self.widths,
            "blocks_per_stage": self.blocks_per_stage,
            "norm": self.norm,
            "norm_momentum": self.norm_momentum,
        })
        return config


def _image_shape(input_shape) -> tuple[int, int, int]:
    shape = tuple(input_shape) if isinstance(input_shape, (list, tuple)) else None
    if (shape is None or len(shape) != 3
            or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)):
        raise ValueError(
            "`input_shape` must be (height, width, channels) of positive ints, e.g. "
            f"(28, 28, 1). Received: input_shape={input_shape!r}"
        )
    return shape
