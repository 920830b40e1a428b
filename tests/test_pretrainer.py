import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import pretrainlib as pl


@pytest.mark.slow
def test_masked_lm_loss_falls_on_real_wordnet_glosses(tokenizer, glosses, tiny_encoder):
    ds = pl.data.text_dataset(glosses, tokenizer, batch_size=32, sequence_length=32, pack=True,
                              seed=0)
    pre = pl.Pretrainer(tiny_encoder(), pl.objectives.MaskedLM(tokenizer=tokenizer))
    pre.compile(learning_rate=3e-3)
    before = pre.evaluate(ds, verbose=0, return_dict=True)
    history = pre.fit(ds, epochs=3, verbose=0)
    after = pre.evaluate(ds, verbose=0, return_dict=True)
    assert after["loss"] < before["loss"] - 0.5, (before, history.history, after)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_pretrainer_hands_back_the_trained_backbone(tokenizer, glosses, tiny_encoder):
    encoder = tiny_encoder()
    before = [np.array(w) for w in encoder.get_weights()]
    pre = pl.Pretrainer(encoder, pl.objectives.MaskedLM(tokenizer=tokenizer))
    pre.compile()
    pre.fit(pl.data.text_dataset(glosses[:200], tokenizer, batch_size=16, sequence_length=32,
                                 pack=True), epochs=1, verbose=0)
    assert pre.backbone is encoder
    assert any(not np.array_equal(a, b) for a, b in zip(before, encoder.get_weights()))


@pytest.mark.slow
def test_saved_backbone_reloads_in_fresh_process_with_identical_outputs(tokenizer, glosses,
                                                                         tiny_encoder, tmp_path):
    encoder = tiny_encoder()
    pre = pl.Pretrainer(encoder, pl.objectives.MaskedLM(tokenizer=tokenizer))
    pre.compile()
    pre.fit(pl.data.text_dataset(glosses[:200], tokenizer, batch_size=16, sequence_length=32,
                                 pack=True), epochs=1, verbose=0)
    encoder.save(tmp_path / "backbone.keras")
    tokenizer.save(str(tmp_path / "tok.json"))
    texts = glosses[:8]
    expected = encoder(tokenizer.encode(texts, 32))["pooled_output"].numpy()
    np.save(tmp_path / "texts.npy", np.array(texts))
    code = f"""
import keras, numpy as np, pretrainlib as pl
encoder = keras.saving.load_model({str(tmp_path / 'backbone.keras')!r})
tok = pl.text.WordPieceTokenizer.load({str(tmp_path / 'tok.json')!r})
texts = list(np.load({str(tmp_path / 'texts.npy')!r}))
np.save({str(tmp_path / 'out.npy')!r}, encoder(tok.encode(texts, 32))["pooled_output"].numpy())
"""
    subprocess.run([sys.executable, "-c", code], check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)


def test_pretrainer_round_trips_through_keras_format(tokenizer, tiny_encoder, tmp_path):
    pre = pl.Pretrainer(tiny_encoder(), pl.objectives.MaskedLM(tokenizer=tokenizer, mask_rate=0.2))
    pre.save(tmp_path / "pre.keras")
    restored = keras.saving.load_model(tmp_path / "pre.keras")
    assert isinstance(restored, pl.Pretrainer)
    assert restored.objective.get_config() == pre.objective.get_config()
    for a, b in zip(pre.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_compile_defaults_are_adamw_with_warmup_decay_and_clipping(tokenizer, tiny_encoder):
    pre = pl.Pretrainer(tiny_encoder(), pl.objectives.MaskedLM(tokenizer=tokenizer))
    pre.compile(learning_rate=2e-3)
    assert isinstance(pre.optimizer, pl.training.AdamW)
    assert pre.optimizer.clipnorm == 1.0
    schedule = pre.optimizer._learning_rate
    assert isinstance(schedule, pl.training.WarmupLinearDecay) and schedule.peak == 2e-3


def test_schedule_spans_the_whole_fit_call(tokenizer, glosses, tiny_encoder):
    pre = pl.Pretrainer(tiny_encoder(), pl.objectives.MaskedLM(tokenizer=tokenizer))
    pre.compile(learning_rate=1e-3)
    ds = pl.data.text_dataset(glosses[:300], tokenizer, batch_size=16, sequence_length=32,
                              pack=True)
    pre.fit(ds, epochs=2, verbose=0)
    schedule = pre.optimizer._learning_rate
    assert schedule.total_steps == 2 * int(ds.cardinality())
    assert float(schedule(pre.optimizer.iterations)) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(
    "build, error, fragment",
    [
        (lambda tok, enc: pl.Pretrainer("not a model", pl.objectives.MaskedLM(tokenizer=tok)),
         TypeError, "backbone"),
        (lambda tok, enc: pl.Pretrainer(enc, "mlm"), TypeError, "objective"),
    ],
)
def test_bad_constructor_arguments(tokenizer, tiny_encoder, build, error, fragment):
    with pytest.raises(error, match=fragment):
        build(tokenizer, tiny_encoder())


def test_fit_rejects_empty_dataset_and_labels(tokenizer, tiny_encoder):
    pre = pl.Pretrainer(tiny_encoder(), pl.objectives.MaskedLM(tokenizer=tokenizer))
    pre.compile()
    empty = tf.data.Dataset.from_tensor_slices(
        {"token_ids": np.zeros((0, 8), "int32"), "padding_mask": np.zeros((0, 8), "int32")}
    ).batch(4)
    with pytest.raises(ValueError, match="empty"):
        pre.fit(empty, verbose=0)
    with pytest.raises(ValueError, match="`y` must be None"):
        pre.fit(empty, y=np.zeros(3), verbose=0)
    with pytest.raises(ValueError, match="`x` yields inputs.*text_dataset"):
        pre.fit(np.zeros((4, 8)), verbose=0)
