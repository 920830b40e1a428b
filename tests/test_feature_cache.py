"""Frozen-backbone epochs train the head on features computed once."""

import keras
import numpy as np
import pytest

import pretrainlib as pl


class Mode(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.cached = self.model.fit_on_cached_features


def train(tiny_encoder, labeled, policy, cache, epochs=3, **encoder_kwargs):
    keras.utils.set_random_seed(0)
    ft = pl.FineTuner(tiny_encoder(**encoder_kwargs), pl.heads.Classifier(6, dropout=0.0),
                      policy=policy)
    ft.compile(learning_rate=1e-2)
    mode = Mode()
    history = ft.fit(labeled(shuffle=False), validation_data=labeled(n=32, seed=1),
                     epochs=epochs, callbacks=[mode], cache_features=cache, verbose=0)
    return ft, history, mode.cached


@pytest.mark.slow
def test_cached_and_uncached_linear_probes_agree(tiny_encoder, labeled):
    plain, plain_history, plain_cached = train(
        tiny_encoder, labeled, pl.freezing.FeatureExtraction(), False)
    fast, fast_history, fast_cached = train(
        tiny_encoder, labeled, pl.freezing.FeatureExtraction(), "auto")
    assert (plain_cached, fast_cached) == (False, True)
    # Unshuffled data, no dropout: the same steps, up to float rounding.
    np.testing.assert_allclose(fast.head.get_weights()[0], plain.head.get_weights()[0],
                               atol=1e-4)
    np.testing.assert_allclose(fast_history.history["loss"], plain_history.history["loss"],
                               rtol=1e-4)
    np.testing.assert_allclose(fast_history.history["val_macro_f1"],
                               plain_history.history["val_macro_f1"], atol=1e-6)
    # After a cached fit the model takes raw inputs again.
    x = next(iter(labeled(shuffle=False)))[0]
    np.testing.assert_allclose(fast.predict(x, verbose=0), plain.predict(x, verbose=0),
                               atol=1e-4)
    assert fast.evaluate(labeled(), verbose=0, return_dict=True)["accuracy"] >= 0


@pytest.mark.slow
def test_cache_is_skipped_when_the_backbone_trains_or_is_random(tiny_encoder, labeled):
    _, _, cached = train(tiny_encoder, labeled, pl.freezing.FreezeThenUnfreeze(1), "auto")
    assert not cached  # epoch 1 trains the backbone
    _, _, cached = train(tiny_encoder, labeled, pl.freezing.FreezeThenUnfreeze(2), "auto",
                         epochs=2)
    assert cached  # both epochs of this call are frozen ones
    _, _, cached = train(tiny_encoder, labeled, pl.freezing.FeatureExtraction(), "auto",
                         dropout=0.1)
    assert not cached


@pytest.mark.slow
def test_insisting_on_the_cache_explains_why_not(tiny_encoder, labeled):
    with pytest.raises(ValueError, match="block_0.*train"):
        train(tiny_encoder, labeled, pl.freezing.FullFineTune(), True)
    with pytest.raises(ValueError, match="random layers"):
        train(tiny_encoder, labeled, pl.freezing.FeatureExtraction(), True, dropout=0.1)
    with pytest.raises(ValueError, match="cache_features"):
        train(tiny_encoder, labeled, pl.freezing.FeatureExtraction(), "sometimes")


def test_the_cache_mirrors_the_source_shuffling(labeled):
    from pretrainlib.training.feature_cache import reshuffles

    assert reshuffles(labeled(shuffle=True))
    assert not reshuffles(labeled(shuffle=False))
