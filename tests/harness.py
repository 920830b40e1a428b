"""The shared protocol harness: every objective, policy, transform, backbone and head,
registered once, gets the same checks (as KerasHub's `tests/test_case.py`).

A registered case builds a compiled Pretrainer or FineTuner around the part and a
small real dataset. `tests/test_protocol.py` then checks every case the same way:
it fits (loss finite, weights move), its config round-trips, it saves and reloads
in a fresh process with `safe_mode=True` (same outputs), and under MirroredStrategy
on two logical CPUs it trains to one device's weights. A new part is covered by
adding one `@register` function here.

Heads have no dropout and the data no shuffling, so a mirrored run can be compared
with one device weight for weight. That comparison compiles with SGD: Adam turns the
float noise of a gradient that is zero in exact arithmetic (an attention key bias,
which softmax ignores) into a full step of either sign, so two exact runs would
differ by twice the learning rate there.
"""

from __future__ import annotations

import functools
import tempfile

import keras
import numpy as np

import pretrainlib as pl

KINDS = ("objective", "policy", "transform", "backbone", "head", "semi")
REGISTRY: dict[str, dict] = {kind: {} for kind in KINDS}
OPTIMIZER = {"optimizer": "auto", "learning_rate": 1e-2}  # what every case compiles with
# The kinds whose cases are also quantized, reloaded and exported: what a FineTuner
# serves is its backbone, transform and head. A policy or a semi-supervised method acts
# while training only; its case serves the same network as another case's.
SERVED = ("transform", "backbone", "head")


# Mirrored against one device: float32 rounding only. A backbone with BatchNorm gets
# more room: synchronized BatchNorm (pl.backbones.ConvNet's, so that statistics are
# the global batch's) computes them from all-reduced sums, E[x^2] - E[x]^2, where one
# device takes two-pass moments; after two steps that is ~1e-4 (about 3e-5 of a step).
ATOL, BATCHNORM_ATOL = 2e-5, 5e-4


def register(kind: str, name: str, epochs: int = 1, atol: float = ATOL):
    """Registers `build() -> (model, data)` as the case `kind/name`; `atol` is how far
    its MirroredStrategy weights may be from one device's."""
    def add(build):
        REGISTRY[kind][name] = (build, epochs, atol)
        return build
    return add


def cases() -> list[str]:
    """`"kind/name"` of every registered case."""
    return [f"{kind}/{name}" for kind in KINDS for name in REGISTRY[kind]]


def build(case: str):
    """`(model, data, epochs)` of a case, built from seed 0 (call it under a
    strategy's scope to build it there)."""
    kind, name = case.split("/", 1)
    make, epochs, _ = REGISTRY[kind][name]
    keras.utils.set_random_seed(0)
    model, data = make()
    return model, data, epochs


def atol(case: str) -> float:
    kind, name = case.split("/", 1)
    return REGISTRY[kind][name][2]


def part(case: str, model):
    """The registered part inside a case's model."""
    kind = case.split("/", 1)[0]
    return {"objective": getattr(model, "objective", None),
            "policy": getattr(model, "policy", None),
            "transform": getattr(model, "adapters", None),
            "backbone": model.backbone, "head": getattr(model, "head", None),
            "semi": getattr(model, "semi_supervised", None)}[kind]


def sample_inputs(model, data):
    """A batch of what `model.predict_on_batch` takes, for comparing outputs."""
    data = data["x"] if isinstance(data, dict) else data  # fit's arguments
    batch = next(iter(data))
    if isinstance(model, pl.Pretrainer) or not isinstance(batch, tuple):  # rows of tokens
        return next(iter(model._evaluation_view(data.take(1))))[0]
    return batch[0]


def raw_inputs(model, inputs):
    """What `pl.hub.export(model)` serves for `inputs` (a batch of model inputs): the
    raw images behind them for a case with an image preprocessor, `inputs` otherwise."""
    if getattr(model, "preprocessor", None) is None:
        return inputs
    count = len(np.asarray(inputs))
    return pl.datasets.fashion_mnist().train.sample(32, seed=0).images[:count, :, :, None]


# === Shared data ===
@functools.lru_cache(maxsize=None)
def tokenizer():
    return pl.text.WordPieceTokenizer.train(texts(128), vocab_size=300)


@functools.lru_cache(maxsize=None)
def texts(n: int = 32) -> tuple:
    return tuple(pl.datasets.wordnet_supersenses().train.texts[:n])


def text_data(labels=True, regression=False, **kwargs):
    part = pl.datasets.wordnet_supersenses().train
    targets = None
    if labels:
        targets = (np.asarray(part.labels[:32], "float32") / 5 if regression
                   else list(part.labels[:32]))
    return pl.data.text_dataset(list(texts()), tokenizer(), labels=targets, batch_size=16,
                                sequence_length=16, shuffle=False, **kwargs)


def image_data(labels=True, preprocessor=None, classes=10):
    part = pl.datasets.fashion_mnist().train.sample(32, seed=0)
    return pl.data.image_dataset(part.images, part.labels % classes if labels else None,
                                 batch_size=16, shuffle=False, preprocessor=preprocessor)


def text_encoder(**kwargs):
    config = dict(num_layers=1, hidden_dim=16, num_heads=2, max_sequence_length=16)
    return pl.backbones.TextEncoder(tokenizer().vocab_size, **{**config, **kwargs})


def conv_net():
    return pl.backbones.ConvNet(widths=(4, 8), blocks_per_stage=1)


def group_norm_conv_net():
    return pl.backbones.ConvNet(widths=(8, 16), blocks_per_stage=1, norm="group")


def fine_tuner(backbone=None, head=None, data=None, **kwargs):
    model = pl.FineTuner(backbone or text_encoder(), head or pl.heads.Classifier(6, dropout=0.0),
                         **kwargs)
    model.compile(**OPTIMIZER)
    return model, data if data is not None else text_data()


def pretrainer(backbone, objective, data):
    model = pl.Pretrainer(backbone, objective, seed=0)
    model.compile(**OPTIMIZER)
    return model, data


# === Objectives ===
@register("objective", "MaskedLM")
def _masked_lm():
    return pretrainer(text_encoder(), pl.objectives.MaskedLM(tokenizer=tokenizer(),
                                                             whole_word=True),
                      text_data(labels=False, pack=True))


@register("objective", "CausalLM")
def _causal_lm():
    return pretrainer(text_encoder(causal=True), pl.objectives.CausalLM(),
                      text_data(labels=False, pack=True))


@register("objective", "Autoencoder", atol=BATCHNORM_ATOL)
def _autoencoder():
    return pretrainer(conv_net(), pl.objectives.Autoencoder(patch_size=7),
                      image_data(labels=False))


@register("objective", "ImageClassification", atol=BATCHNORM_ATOL)
def _image_classification():
    return pretrainer(conv_net(), pl.objectives.ImageClassification(3),
                      image_data(classes=3))


@register("objective", "MaskedAutoencoder")
def _masked_autoencoder():  # the encoder runs on the visible patches only
    vit = pl.backbones.VisionEncoder(patch_size=7, num_layers=1, hidden_dim=16, num_heads=2)
    return pretrainer(vit, pl.objectives.MaskedAutoencoder(decoder_dim=16, decoder_heads=2),
                      image_data(labels=False))


# The two-view objectives on a GroupNorm ConvNet (per-example normalization). SimCLR's
# mirrored run then matches one device to ~2e-6 (without gathering the negatives from
# both replicas it would be ~5e-3 off); BYOL's and SimSiam's cosine losses amplify the
# synchronized BatchNorm moments of their MLPs to ~4e-5, hence BatchNorm's room.
@register("objective", "SimCLR")
def _simclr():  # under a strategy the NT-Xent negatives are gathered from every replica
    return pretrainer(group_norm_conv_net(), pl.objectives.SimCLR(projection_dim=8),
                      image_data(labels=False))


@register("objective", "BYOL", atol=BATCHNORM_ATOL)
def _byol():  # the moving-average target is updated on every replica alike
    return pretrainer(group_norm_conv_net(),
                      pl.objectives.BYOL(target_decay=0.9, projection_dim=8),
                      image_data(labels=False))


@register("objective", "SimSiam", atol=BATCHNORM_ATOL)
def _simsiam():
    return pretrainer(group_norm_conv_net(), pl.objectives.SimSiam(projection_dim=8),
                      image_data(labels=False))


@register("objective", "Distillation", atol=BATCHNORM_ATOL)
def _distillation():
    teacher = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                                keras.layers.Dense(3)])
    return pretrainer(conv_net(), pl.objectives.Distillation(teacher, alpha=0.5),
                      image_data(classes=3))


# === Policies (two epochs: each crosses a stage boundary where it has one) ===
for _name, _policy in {
        "FeatureExtraction": lambda: pl.freezing.FeatureExtraction(),
        "FullFineTune": lambda: pl.freezing.FullFineTune(),
        "FreezeThenUnfreeze": lambda: pl.freezing.FreezeThenUnfreeze(1, 0.5),
        "GradualUnfreeze": lambda: pl.freezing.GradualUnfreeze(1),
        "LayerwiseLRDecay": lambda: pl.freezing.LayerwiseLRDecay(0.5, freeze_epochs=1),
        "FreezePolicy": lambda: pl.freezing.FreezePolicy([
            pl.freezing.Stage(0, ["head"]),
            pl.freezing.Stage(1, "all", {"embeddings": 0.1}, {"block_0": ["bias", "gamma"]})]),
}.items():
    register("policy", _name, epochs=2)(lambda make=_policy: fine_tuner(policy=make()))


# === Transforms, under a policy with a stage boundary ===
for _name, _transform in {"LoRA": lambda: pl.freezing.LoRA(rank=2),
                          "Adapters": lambda: pl.freezing.Adapters(4),
                          "BitFit": lambda: pl.freezing.BitFit()}.items():
    register("transform", _name, epochs=2)(lambda make=_transform: fine_tuner(
        policy=pl.freezing.FreezeThenUnfreeze(1), adapters=make()))


# === Backbones ===
@register("backbone", "TextEncoder")
def _text_encoder():
    return fine_tuner(text_encoder(), policy=pl.freezing.FullFineTune())


@register("backbone", "ConvNet", atol=BATCHNORM_ATOL)
def _conv_net():
    return fine_tuner(conv_net(), pl.heads.Classifier(10, dropout=0.0), image_data(),
                      policy=pl.freezing.FullFineTune())


@register("backbone", "VisionEncoder")
def _vision_encoder():
    vit = pl.backbones.VisionEncoder(input_shape=(28, 28, 1), patch_size=7, num_layers=1,
                                     hidden_dim=16, num_heads=2)
    return fine_tuner(vit, pl.heads.Classifier(10, dropout=0.0), image_data(),
                      policy=pl.freezing.FullFineTune())


@register("backbone", "keras.applications.MobileNetV2")
def _mobilenet():
    net = keras.applications.MobileNetV2(weights=None, include_top=False, alpha=0.35,
                                         input_shape=(32, 32, 3))
    preprocessor = pl.data.ImagePreprocessor.for_backbone(net)
    return fine_tuner(net, pl.heads.Classifier(10, dropout=0.0),
                      image_data(preprocessor=preprocessor), policy=pl.freezing.FullFineTune(),
                      preprocessor=preprocessor)


@register("backbone", "keras_hub.BertBackbone")
def _bert():
    import keras_hub

    bert = keras_hub.models.BertBackbone(vocabulary_size=tokenizer().vocab_size, num_layers=1,
                                         num_heads=2, hidden_dim=16, intermediate_dim=32,
                                         max_sequence_length=16, dropout=0.0)
    return fine_tuner(bert, policy=pl.freezing.GradualUnfreeze(1))


@register("backbone", "hub.SavedModel")
def _saved_model():
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    path = tempfile.mkdtemp() + "/backbone"
    keras.Model(inputs, outputs).export(path, verbose=False)
    return fine_tuner(pl.hub.load_backbone(path), pl.heads.Classifier(10, dropout=0.0),
                      image_data(), policy=pl.freezing.FullFineTune())


# === Heads ===
@register("head", "Classifier")
def _classifier():
    return fine_tuner(head=pl.heads.Classifier(6, hidden_dim=8, dropout=0.0),
                      policy=pl.freezing.FullFineTune())


@register("head", "ClozeClassifier")
def _cloze_classifier():
    encoder = text_encoder()
    masked_lm = pl.Pretrainer(encoder, pl.objectives.MaskedLM(tokenizer=tokenizer()))
    candidates = ["animal", "person", "plant", "food", "place", "part", "body", "any",
                  "small", "large", "or", "of", "the", "a"]
    words = [w for w in candidates if len(tokenizer().token_ids([w])[0]) == 1][:6]
    prompt = pl.text.Prompt(tokenizer(), "a [MASK] : {text}", words)
    labels = list(pl.datasets.wordnet_supersenses().train.labels[:32])
    data = pl.data.text_dataset(list(texts()), prompt, labels=labels, batch_size=16,
                                sequence_length=16, shuffle=False)
    return fine_tuner(encoder, pl.heads.ClozeClassifier.from_masked_lm(masked_lm, prompt),
                      data, policy=pl.freezing.FullFineTune())


@register("head", "CausalLMHead")
def _causal_lm_head():  # owns no weights: reads through the backbone's token embedding
    data = pl.data.prompt_dataset([t[:6] for t in texts()], [t[6:12] for t in texts()],
                                  tokenizer(),
                                  batch_size=16, sequence_length=16, shuffle=False)
    return fine_tuner(text_encoder(causal=True), pl.heads.CausalLMHead(), data=data)


@register("head", "Heads")
def _heads():
    part = pl.datasets.wordnet_supersenses().train
    labels = {"supersense": list(part.labels[:32]),
              "long": [int(len(t) > 60) for t in part.texts[:32]]}
    data = pl.data.text_dataset(list(texts()), tokenizer(), labels=labels, batch_size=16,
                                sequence_length=16, shuffle=False)
    heads = {"supersense": pl.heads.Classifier(6, dropout=0.0),
             "long": pl.heads.Classifier(2, dropout=0.0)}
    return fine_tuner(head=heads, data=data, policy=pl.freezing.FullFineTune())


@register("head", "Regressor")
def _regressor():
    return fine_tuner(head=pl.heads.Regressor(dropout=0.0), data=text_data(regression=True),
                      policy=pl.freezing.FullFineTune())


# === Semi-supervised methods (a case's data is then `fit`'s arguments) ===
@register("semi", "PseudoLabel")
def _pseudo_label():
    model, data = fine_tuner(policy=pl.freezing.FullFineTune(),
                             semi_supervised=pl.semi.PseudoLabel(threshold=0.2))
    pool = pl.data.text_dataset(list(pl.datasets.wordnet_supersenses().unlabeled[:48]),
                                tokenizer(), batch_size=16, sequence_length=16, shuffle=False)
    return model, {"x": data, "unlabeled": pool}


@register("semi", "Consistency", atol=BATCHNORM_ATOL)
def _consistency():
    model, data = fine_tuner(conv_net(), pl.heads.Classifier(10, dropout=0.0), image_data(),
                             policy=pl.freezing.FullFineTune(),
                             semi_supervised=pl.semi.Consistency(threshold=0.2))
    pool = pl.datasets.fashion_mnist().train.images[-48:]
    return model, {"x": data, "unlabeled": pool}
