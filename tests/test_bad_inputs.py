"""One table of bad inputs at the public boundary: each fails before any training
step, with the exception type users expect and a message that names the argument."""

import keras
import numpy as np
import pytest

import pretrainlib as pl

TEXTS = ["a small dog barks", "a large cat sleeps", "the dog chases the cat"]


@pytest.fixture(scope="module")
def tok():
    return pl.text.WordPieceTokenizer.train(TEXTS, vocab_size=60)


def encoder(tok, **kwargs):
    config = dict(num_layers=1, hidden_dim=16, num_heads=2, max_sequence_length=16)
    config.update(kwargs)
    return pl.backbones.TextEncoder(tok.vocab_size, **config)


def labeled(tok, labels=(0, 1, 0), **kwargs):
    return pl.data.text_dataset(TEXTS, tok, labels=list(labels), sequence_length=16,
                                **kwargs)


def fitted(tok, data, **fit_kwargs):
    ft = pl.FineTuner(encoder(tok), pl.heads.Classifier(2))
    ft.compile()
    return ft.fit(data, verbose=0, **fit_kwargs)


def images(n=4):
    return np.zeros((n, 28, 28), "uint8")


class _NoConfig(keras.Model):
    """A subclassed model that says it has no config: nothing to rebuild it from."""

    def call(self, x):
        return x

    def get_config(self):
        raise NotImplementedError


CASES = [
    # --- tokenizer and text data ---
    ("tokenizer texts not a list", lambda t: pl.text.WordPieceTokenizer.train("a dog", 50),
     FileNotFoundError, "texts go in a list"),
    ("tokenizer vocab_size", lambda t: pl.text.WordPieceTokenizer.train(TEXTS, 0),
     ValueError, "vocab_size"),
    ("encode sequence_length", lambda t: t.encode(TEXTS, 0), ValueError, "sequence_length"),
    ("text_dataset texts of ints", lambda t: pl.data.text_dataset([1, 2], t), TypeError,
     "texts"),
    ("text_dataset batch_size", lambda t: pl.data.text_dataset(TEXTS, t, batch_size=0),
     ValueError, "batch_size"),
    ("text_dataset labels length", lambda t: labeled(t, labels=(0, 1)), ValueError, "labels"),
    ("text_dataset negative label", lambda t: labeled(t, labels=(0, -1, 0)), ValueError,
     "labels"),
    ("reset_attention without pack",
     lambda t: pl.data.text_dataset(TEXTS, t, reset_attention=True), ValueError,
     "reset_attention"),
    # --- image data ---
    ("image_dataset rank", lambda t: pl.data.image_dataset(np.zeros((4, 28)), None),
     ValueError, "images"),
    ("image_dataset labels length", lambda t: pl.data.image_dataset(images(), [0, 1]),
     ValueError, "labels"),
    ("image_dataset augment", lambda t: pl.data.image_dataset(images(), augment="flip"),
     TypeError, "augment"),
    # --- backbones ---
    ("TextEncoder vocab_size", lambda t: pl.backbones.TextEncoder(0), ValueError,
     "vocab_size"),
    ("TextEncoder num_heads", lambda t: encoder(t, hidden_dim=30, num_heads=4), ValueError,
     "num_heads"),
    ("ConvNet widths", lambda t: pl.backbones.ConvNet(widths=()), ValueError, "widths"),
    ("ConvNet norm", lambda t: pl.backbones.ConvNet(norm="layer"), ValueError, "norm"),
    ("VisionEncoder patch_size",
     lambda t: pl.backbones.VisionEncoder(input_shape=(28, 28, 1), patch_size=5), ValueError,
     "patch_size"),
    # --- objectives ---
    ("MaskedLM mask_rate", lambda t: pl.objectives.MaskedLM(t, mask_rate=1.5), ValueError,
     "mask_rate"),
    ("MaskedLM vocabulary mismatch",
     lambda t: pl.Pretrainer(pl.backbones.TextEncoder(t.vocab_size + 5, num_layers=1,
                                                      hidden_dim=16, num_heads=2),
                             pl.objectives.MaskedLM(t)), ValueError, "vocab_size"),
    ("MaskedLM on images",
     lambda t: pl.Pretrainer(pl.backbones.ConvNet(), pl.objectives.MaskedLM(t)), ValueError,
     "MaskedLM"),
    ("Autoencoder noise", lambda t: pl.objectives.Autoencoder(noise="salt"), ValueError,
     "noise"),
    ("Autoencoder mask_ratio", lambda t: pl.objectives.Autoencoder(mask_ratio=1.0), ValueError,
     "mask_ratio"),
    ("ImageClassification num_classes", lambda t: pl.objectives.ImageClassification(1),
     ValueError, "num_classes"),
    ("Distillation teacher", lambda t: pl.objectives.Distillation("bert"), TypeError,
     "teacher"),
    ("Distillation temperature",
     lambda t: pl.objectives.Distillation(
         keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]), temperature=0),
     ValueError, "temperature"),
    ("Distillation head",
     lambda t: pl.objectives.Distillation(
         keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]), head=3),
     TypeError, "`head`"),
    ("Pretrainer objective type", lambda t: pl.Pretrainer(encoder(t), "mlm"), TypeError,
     "objective"),
    # --- heads, fine-tuner, policies ---
    ("Classifier num_classes", lambda t: pl.heads.Classifier(1), ValueError, "num_classes"),
    ("Classifier dropout", lambda t: pl.heads.Classifier(2, dropout=2.0), ValueError,
     "dropout"),
    ("head reads a missing feature",
     lambda t: pl.FineTuner(encoder(t), pl.heads.Classifier(2, feature="cls_output")),
     ValueError, "feature"),
    ("FineTuner policy type", lambda t: pl.FineTuner(encoder(t), pl.heads.Classifier(2),
                                                     policy="freeze"), TypeError, "policy"),
    ("GradualUnfreeze every_epochs", lambda t: pl.freezing.GradualUnfreeze(0), ValueError,
     "every_epochs"),
    ("LayerwiseLRDecay decay", lambda t: pl.freezing.LayerwiseLRDecay(decay=0), ValueError,
     "decay"),
    ("LoRA rank", lambda t: pl.freezing.LoRA(rank=0), ValueError, "rank"),
    ("Adapters bottleneck", lambda t: pl.freezing.Adapters(0), ValueError, "bottleneck"),
    ("unknown layer group",
     lambda t: pl.FineTuner(encoder(t), pl.heads.Classifier(2), policy=pl.freezing.FreezePolicy(
         [pl.freezing.Stage(0, ["head", "block_9"])])), ValueError, "block_9"),
    ("compile learning_rate", lambda t: pl.FineTuner(encoder(t), pl.heads.Classifier(2))
     .compile(learning_rate=-1.0), ValueError, "learning_rate"),
    ("compile optimizer name", lambda t: pl.FineTuner(encoder(t), pl.heads.Classifier(2))
     .compile(optimizer="lamb"), ValueError, "optimizer"),
    ("compile optimizer type", lambda t: pl.FineTuner(encoder(t), pl.heads.Classifier(2))
     .compile(optimizer=3), TypeError, "`optimizer`"),
    ("weight_decay with an instance", lambda t: pl.FineTuner(encoder(t), pl.heads.Classifier(2))
     .compile(keras.optimizers.Adam(), weight_decay=0.1), ValueError, "`weight_decay`"),
    ("FineTuner adapters type", lambda t: pl.FineTuner(encoder(t), pl.heads.Classifier(2),
                                                       adapters="lora"), TypeError, "adapters"),
    ("current_stage out of range", lambda t: pl.FineTuner(
        encoder(t), pl.heads.Classifier(2), current_stage=5), ValueError, "current_stage"),
    ("clone a model without a config", lambda t: pl.backbones.clone(_NoConfig()), ValueError,
     "get_config"),
    ("TextPreprocessor tokenizer", lambda t: pl.text.TextPreprocessor("bert"), TypeError,
     "tokenizer"),
    ("TextPreprocessor sample_weight", lambda t: pl.text.TextPreprocessor(t, 16).dataset(
        TEXTS, [0, 1, 0], sample_weight=[1, 1, 1]), ValueError, "sample_weight"),
    ("ImagePreprocessor image_size", lambda t: pl.data.ImagePreprocessor(image_size=(28,)),
     ValueError, "image_size"),
    ("ImagePreprocessor scale", lambda t: pl.data.ImagePreprocessor(scale="imagenet"),
     ValueError, "scale"),
    ("image_dataset preprocessor", lambda t: pl.data.image_dataset(images(), preprocessor=1),
     TypeError, "preprocessor"),
    # --- fit and evaluate ---
    ("fit labels out of range", lambda t: fitted(t, labeled(t, labels=(0, 1, 2))), ValueError,
     "num_classes"),
    ("fit unlabeled data", lambda t: fitted(t, pl.data.text_dataset(TEXTS, t,
                                                                    sequence_length=16)),
     ValueError, "`x`"),
    ("fit arrays without y", lambda t: fitted(t, [1, 2, 3]), ValueError, "`y`"),
    ("fit an empty dataset", lambda t: fitted(t, labeled(t).take(0)), ValueError, "`x`"),
    ("fit a dataset with y", lambda t: fitted(t, labeled(t), y=np.zeros(3)), ValueError,
     "`y`"),
    ("fit endless data", lambda t: fitted(t, labeled(t).repeat()), ValueError,
     "steps_per_epoch"),
    ("fit without x", lambda t: fitted(t, None), ValueError, "`x`"),
    ("fit arrays of objects", lambda t: fitted(t, [{"a": 1}], y=[0]), TypeError, "`x`"),
    ("validation_split with validation_data", lambda t: fitted(
        t, np.zeros((4, 16), "int32"), y=np.zeros(4, "int32"), validation_split=0.5,
        validation_data=labeled(t)), ValueError, "validation_split"),
    ("validation_split of a dataset", lambda t: fitted(t, labeled(t), validation_split=0.5),
     ValueError, "validation_split"),
    ("validation_split leaving nothing", lambda t: fitted(
        t, np.zeros((1, 16), "int32"), y=np.zeros(1, "int32"), validation_split=0.5),
     ValueError, "validation_split"),
    ("fit bad validation labels",
     lambda t: fitted(t, labeled(t), validation_data=labeled(t, labels=(0, 5, 0))),
     ValueError, "validation_data"),
    ("Evaluator metric", lambda t: pl.Evaluator(["f2"]), ValueError, "metrics"),
    ("Evaluator bootstrap", lambda t: pl.Evaluator(bootstrap=-1), ValueError, "bootstrap"),
    ("evaluate on a list", lambda t: pl.Evaluator().evaluate(
        keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)]), [1, 2]), TypeError,
     "dataset"),
    ("Checkpoint keep", lambda t: pl.training.Checkpoint("ck", keep=0), ValueError, "keep"),
    ("sample size", lambda t: pl.datasets.fashion_mnist().test.sample(10**6), ValueError,
     "`n`"),
]


def test_the_table_is_large():
    assert len(CASES) >= 30


@pytest.mark.parametrize("name, call, error, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input_fails_clearly_naming_the_argument(tok, name, call, error, fragment):
    with pytest.raises(error) as caught:
        call(tok)
    assert fragment in str(caught.value), f"{name}: {caught.value}"
