"""Mixed precision through `compile(precision=...)`."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import pretrainlib as pl
from pretrainlib.training import precision


def compute_dtypes(model):
    return {layer.compute_dtype for layer in model._flatten_layers()
            if not isinstance(layer, keras.layers.InputLayer)}


@pytest.mark.slow
def test_masked_lm_learns_in_mixed_bfloat16_and_reloads_so(tiny_encoder, tokenizer, glosses,
                                                           tmp_path):
    pre = pl.Pretrainer(tiny_encoder(), pl.objectives.MaskedLM(tokenizer=tokenizer))
    pre.compile(learning_rate=3e-3, precision="mixed_bfloat16")
    assert compute_dtypes(pre) == {"bfloat16"}
    assert {v.dtype for v in pre.trainable_variables} == {"float32"}  # master weights
    data = pl.data.text_dataset(glosses[:600], tokenizer, batch_size=32, sequence_length=32,
                                pack=True, seed=0)
    losses = pre.fit(data, epochs=2, verbose=0).history["loss"]
    assert np.isfinite(losses).all() and losses[1] < losses[0], losses
    pre.save(tmp_path / "pre.keras")
    loaded = keras.saving.load_model(tmp_path / "pre.keras")
    assert compute_dtypes(loaded) == {"bfloat16"}
    assert loaded.get_compile_config()["pretrainlib"]["precision"] == "mixed_bfloat16"


@pytest.mark.slow
def test_mixed_float16_scales_the_loss_and_keeps_the_policy_working(tiny_encoder, labeled):
    ft = pl.FineTuner(tiny_encoder(), pl.heads.Classifier(6),
                      policy=pl.freezing.FreezeThenUnfreeze(1, backbone_lr_multiplier=0.5))
    ft.compile(learning_rate=3e-3, precision="mixed_float16")
    assert isinstance(ft.optimizer, keras.optimizers.LossScaleOptimizer)  # added by Keras
    assert compute_dtypes(ft) == {"float16"}
    backbone = [np.array(v) for v in ft.backbone.weights]
    history = ft.fit(labeled(64), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    # The policy reached the wrapped optimizer: the unfrozen backbone trained.
    assert any(not np.array_equal(a, np.array(b))
               for a, b in zip(backbone, ft.backbone.weights))
    assert ft.predict(labeled(16, shuffle=False), verbose=0).shape == (16, 6)


@pytest.mark.slow
def test_skipped_batches_still_reach_the_loss_scale_optimizer(tiny_encoder, labeled):
    def train(data):
        keras.utils.set_random_seed(0)
        ft = pl.FineTuner(tiny_encoder(), pl.heads.Classifier(6),
                          policy=pl.freezing.FullFineTune())
        ft.compile(learning_rate=1e-3, precision="mixed_float16", skip_nonfinite=True)
        history = ft.fit(data, epochs=1, verbose=0)
        return ft, history

    clean = labeled(n=32, shuffle=False)
    x, y = next(iter(clean))
    poisoned = clean.concatenate(tf.data.Dataset.from_tensors(
        ({"token_ids": x["token_ids"], "padding_mask": x["padding_mask"] * 0}, y + 100)))
    scaled, _ = train(clean)
    bad, history = train(poisoned.map(lambda a, b: (a, tf.minimum(b, 5))))
    # The last batch attends to nothing: its loss is NaN. It is skipped, and the loss
    # scale optimizer saw it (the scale halved) instead of never learning of it.
    assert float(bad.optimizer.dynamic_scale) == float(scaled.optimizer.dynamic_scale) / 2
    assert np.isfinite(history.history["loss"]).all()


def test_auto_is_float32_on_cpu_and_bad_names_change_nothing(tiny_encoder):
    assert precision.resolve("auto") == "float32"  # this machine has no GPU or TPU
    ft = pl.FineTuner(tiny_encoder(), pl.heads.Classifier(3))
    with pytest.raises(ValueError, match="precision"):
        ft.compile(precision="fp16")
    assert compute_dtypes(ft) == {"float32"}
    assert getattr(ft, "optimizer", None) is None


@pytest.mark.slow
def test_steps_per_execution_runs_every_batch_or_says_what_divides(tiny_encoder, tokenizer,
                                                                   glosses):
    pre = pl.Pretrainer(tiny_encoder(), pl.objectives.MaskedLM(tokenizer=tokenizer))
    data = pl.data.text_dataset(glosses[:320], tokenizer, batch_size=32, sequence_length=32,
                                shuffle=False)  # 10 batches an epoch
    pre.compile(learning_rate=3e-3, steps_per_execution=3)
    with pytest.raises(ValueError, match=r"steps_per_execution.*10 batches.*\[1, 2, 5, 10\]"):
        pre.fit(data, epochs=1, verbose=0)
    assert int(pre.optimizer.iterations) == 0  # refused before any step
    pre.compile(learning_rate=3e-3, steps_per_execution=5)
    history = pre.fit(data, epochs=2, verbose=0)
    assert int(pre.optimizer.iterations) == 20
    assert np.isfinite(history.history["loss"]).all()
