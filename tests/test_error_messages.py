"""Error paths not covered beside their feature: each names the argument."""

import keras
import pytest

import pretrainlib as pl
from pretrainlib.freezing import FreezePolicy, Stage


def test_head_reading_a_missing_feature_names_it(tiny_encoder):
    with pytest.raises(ValueError, match="feature='cls_output'"):
        pl.FineTuner(tiny_encoder(), pl.heads.Classifier(2, feature="cls_output"))


def test_group_index_out_of_range(tiny_encoder):
    with pytest.raises(ValueError, match="Group index 9"):
        pl.FineTuner(tiny_encoder(), pl.heads.Classifier(2),
                     policy=FreezePolicy([Stage(0, ["head", 9])]))


class MyAdam(keras.optimizers.Adam):
    """An optimizer class of the user's own: pretrainlib leaves it as it is."""


def test_lr_multipliers_need_an_optimizer_that_takes_them(tiny_encoder, labeled):
    ft = pl.FineTuner(tiny_encoder(), pl.heads.Classifier(6),
                      policy=pl.freezing.FreezeThenUnfreeze(1, backbone_lr_multiplier=0.5))
    ft.compile(optimizer=MyAdam(1e-3))
    with pytest.raises(ValueError, match="per-group learning rates"):
        ft.fit(labeled(), epochs=2, verbose=0)


def test_fit_before_compile_is_a_clear_error(tiny_encoder, labeled):
    ft = pl.FineTuner(tiny_encoder(), pl.heads.Classifier(6))
    with pytest.raises(RuntimeError, match="compile"):
        ft.fit(labeled(), epochs=1, verbose=0)


@pytest.mark.parametrize(
    "call, error, fragment",
    [
        (lambda tok: tok.encode(["a dog"], 0), ValueError, "sequence_length"),
        (lambda tok: pl.training.make_optimizer("lamb"), ValueError, "optimizer"),
        (lambda tok: pl.training.make_optimizer(learning_rate=-1.0), ValueError, "learning_rate"),
        (lambda tok: pl.backbones.TextEncoder(100, hidden_dim=30, num_heads=4), ValueError,
         "num_heads"),
        (lambda tok: pl.backbones.TextEncoder(0), ValueError, "vocab_size"),
        (lambda tok: pl.Evaluator("perplexty"), ValueError, "Unknown metric .* `metrics`"),
    ],
)
def test_bad_arguments_name_themselves(tokenizer, call, error, fragment):
    with pytest.raises(error, match=fragment):
        call(tokenizer)


def test_sample_size_outside_the_split(wordnet):
    with pytest.raises(ValueError, match="`n`"):
        wordnet.validation.sample(10**6)
    with pytest.raises(ValueError, match="`n`"):
        wordnet.validation.sample(0)
