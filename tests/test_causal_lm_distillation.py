"""CausalLM (next-token prediction) and Distillation (teacher -> student)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import pretrainlib as pl


def test_causal_transform_shifts_targets_by_one(tokenizer, glosses):
    batch = tokenizer.encode(glosses[:8], 16)
    inputs, targets, weights = pl.objectives.CausalLM().transform(batch)
    ids, mask = batch["token_ids"].numpy(), batch["padding_mask"].numpy()
    np.testing.assert_array_equal(inputs["token_ids"], ids[:, :-1])
    np.testing.assert_array_equal(targets, ids[:, 1:])
    np.testing.assert_array_equal(weights, mask[:, 1:])  # no loss on padding targets


def test_causal_attention_never_looks_ahead(tiny_encoder):
    decoder = tiny_encoder(causal=True)
    ids = np.array([[2, 10, 11, 12, 13, 3]], "int32")
    changed = ids.copy()
    changed[0, 4:] = [20, 21]
    out = [decoder({"token_ids": x, "padding_mask": np.ones_like(x)})["sequence_output"]
           for x in (ids, changed)]
    np.testing.assert_allclose(out[0][0, :4], out[1][0, :4], atol=1e-5)  # prefix unchanged
    assert not np.allclose(out[0][0, 4:], out[1][0, 4:])
    bidirectional = tiny_encoder()
    both = [bidirectional({"token_ids": x, "padding_mask": np.ones_like(x)})["sequence_output"]
            for x in (ids, changed)]
    assert not np.allclose(both[0][0, :4], both[1][0, :4])


@pytest.mark.slow
def test_causal_lm_loss_falls_and_perplexity_is_exp_loss(tokenizer, glosses, tiny_encoder):
    keras.utils.set_random_seed(0)
    decoder = tiny_encoder(causal=True)
    pre = pl.Pretrainer(decoder, pl.objectives.CausalLM())
    pre.compile(learning_rate=3e-3)
    data = pl.data.text_dataset(glosses[:1500], tokenizer, batch_size=32, sequence_length=32,
                                pack=True, seed=0)
    history = pre.fit(data, epochs=3, verbose=0)
    losses = history.history["loss"]
    assert losses[0] > losses[1] > losses[2], losses
    assert losses[-1] < np.log(tokenizer.vocab_size) - 0.8  # far better than uniform
    evaluated = pre.evaluate(data, return_dict=True, verbose=0)
    assert evaluated["perplexity"] == pytest.approx(np.exp(evaluated["loss"]), rel=0.02)
    assert not any("lm_head" in w.path for w in pre.weights)  # tied: no extra weights
    # A prompt that ends mid-phrase (after "a large" this tiny model may end the gloss).
    text = pl.objectives.CausalLM.generate(pre, tokenizer, "a person who", max_new_tokens=5)
    assert text.startswith("a person who") and len(text) > len("a person who")  # continued


def test_causal_lm_pretrains_a_keras_hub_decoder(tokenizer, glosses):
    import keras_hub

    keras.utils.set_random_seed(0)
    gpt2 = keras_hub.models.GPT2Backbone(vocabulary_size=tokenizer.vocab_size, num_layers=1,
                                         num_heads=2, hidden_dim=32, intermediate_dim=64,
                                         max_sequence_length=32)
    pre = pl.Pretrainer(gpt2, pl.objectives.CausalLM())
    pre.compile(learning_rate=3e-3)
    data = pl.data.text_dataset(glosses[:800], tokenizer, batch_size=32, sequence_length=32,
                                pack=True, seed=0)
    history = pre.fit(data, epochs=2, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    bert = keras_hub.models.BertBackbone(vocabulary_size=tokenizer.vocab_size, num_layers=1,
                                         num_heads=2, hidden_dim=32, intermediate_dim=64,
                                         max_sequence_length=32)
    with pytest.raises(ValueError, match="causal self-attention.*BertBackbone"):
        pl.Pretrainer(bert, pl.objectives.CausalLM())


def test_causal_lm_rejects_bidirectional_and_image_backbones(tiny_encoder):
    with pytest.raises(ValueError, match="causal=True"):
        pl.Pretrainer(tiny_encoder(), pl.objectives.CausalLM())
    with pytest.raises(ValueError, match="token_ids"):
        pl.Pretrainer(pl.backbones.ConvNet(widths=(8,)), pl.objectives.CausalLM())


# === Distillation ===
def test_distillation_loss_matches_the_formula():
    rng = np.random.default_rng(0)
    student, teacher = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    labels = rng.integers(0, 4, size=5)
    t, alpha = 3.0, 0.3

    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    p, q = softmax(teacher / t), softmax(student / t)
    kl = (p * (np.log(p) - np.log(q))).sum(-1)
    hard = -np.log(softmax(student)[np.arange(5), labels])
    expected = np.mean(alpha * hard + (1 - alpha) * t * t * kl)
    loss = pl.objectives.distillation.DistillationLoss(t, alpha)
    got = loss(labels, np.stack([student, teacher], 1).astype("float32"))
    assert float(got) == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
def test_student_learns_the_teacher_and_keeps_its_head(wordnet, tokenizer, labeled, tiny_encoder):
    keras.utils.set_random_seed(0)
    teacher = pl.FineTuner(tiny_encoder(), pl.heads.Classifier(6),
                           policy=pl.freezing.FullFineTune())
    teacher.compile(learning_rate=3e-3)
    train = labeled(n=240, seed=0)
    teacher.fit(train, epochs=4, verbose=0)
    teacher_weights = [w.numpy().copy() for w in teacher.weights]
    student = tiny_encoder(num_layers=1, hidden_dim=16)
    objective = pl.objectives.Distillation(teacher, temperature=2.0, alpha=0.0)
    pre = pl.Pretrainer(student, objective)
    pre.compile(learning_rate=3e-3)
    unlabeled = train.map(lambda x, y: x)
    history = pre.fit(unlabeled, epochs=6, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert history.history["agreement"][-1] > 0.6
    for before, after in zip(teacher_weights, teacher.weights):
        np.testing.assert_array_equal(before, after.numpy())  # the teacher is frozen
    compressed = pl.FineTuner(student, objective.head, policy=pl.freezing.FullFineTune())
    x, _ = next(iter(train))
    agree = np.mean(np.argmax(compressed.predict(x, verbose=0), -1)
                    == np.argmax(teacher.predict(x, verbose=0), -1))
    assert agree > 0.6


def test_distillation_mixes_hard_labels_and_checks_its_inputs(tiny_encoder):
    inputs = keras.Input((6,))
    teacher = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    student_in = keras.Input((6,))
    student = keras.Model(student_in, keras.layers.Dense(5)(student_in))
    objective = pl.objectives.Distillation(teacher, alpha=0.5)
    pre = pl.Pretrainer(student, objective)
    pre.compile(learning_rate=1e-2)
    x = np.random.default_rng(0).normal(size=(32, 6)).astype("float32")
    history = pre.fit(tf.data.Dataset.from_tensor_slices((x, np.arange(32) % 3)).batch(8),
                      verbose=0)
    assert {"accuracy", "agreement", "loss"} <= set(history.history)
    with pytest.raises(ValueError, match="alpha=0"):
        pre.fit(tf.data.Dataset.from_tensor_slices(x).batch(8), verbose=0)
    with pytest.raises(ValueError, match="same inputs"):
        pl.Pretrainer(tiny_encoder(), pl.objectives.Distillation(teacher))
    with pytest.raises(TypeError, match="teacher"):
        pl.objectives.Distillation("teacher.keras")
    with pytest.raises(ValueError, match="temperature"):
        pl.objectives.Distillation(teacher, temperature=0)
    reloaded = pl.objectives.Distillation.from_config(objective.get_config())
    assert reloaded.num_classes == 3 and reloaded.alpha == 0.5
