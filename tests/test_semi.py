"""Semi-supervised fine-tuning (`pl.semi`, `FineTuner.fit(..., unlabeled=...)`): the
thresholded loss against NumPy, the pool's blocks (only pool examples, each epoch a
permutation, replayed by seed), the views, save/load and the bad-input errors.
Kill-and-resume runs: tests/test_resume.py; MirroredStrategy, config and reload:
the `semi/` cases of tests/harness.py."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import pretrainlib as pl
from pretrainlib import randomness
from pretrainlib.semi import pool as pools
from pretrainlib.semi.views import token_replacer


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("threshold", [0.3, 0.6, 0.9, 1.0])
def test_unlabeled_loss_is_thresholded_cross_entropy_as_in_numpy(threshold):
    rng = np.random.default_rng(0)
    teacher, student = rng.normal(0, 2, (64, 5)), rng.normal(0, 1, (64, 5))
    loss, rate = pl.semi.PseudoLabel(threshold).unlabeled_loss(teacher, student)
    p = softmax(teacher)
    kept = p.max(-1) >= threshold
    nll = -np.log(softmax(student)[np.arange(64), p.argmax(-1)])
    np.testing.assert_allclose(float(loss), (nll * kept).mean(), rtol=1e-5)
    assert float(rate) == pytest.approx(kept.mean())


def test_examples_below_the_threshold_give_no_gradient():
    teacher = tf.constant([[4.0, 0.0], [0.1, 0.0]])  # sure, unsure
    student = tf.Variable([[0.0, 0.0], [0.0, 0.0]])
    with tf.GradientTape() as tape:
        loss, _ = pl.semi.PseudoLabel(0.9).unlabeled_loss(teacher, student)
    gradient = tape.gradient(loss, student).numpy()
    assert np.abs(gradient[0]).sum() > 0 and np.abs(gradient[1]).sum() == 0


def test_the_pool_reads_only_its_own_examples_each_epoch_a_permutation():
    pool = pools.UnlabeledPool(np.arange(12), block=4, prepare=lambda b: (b,), seed=3)
    seen = [int(v) for block, in pool.stream(0).take(6) for v in block]
    assert sorted(seen[:12]) == list(range(12)) and sorted(seen[12:]) == list(range(12))
    assert seen[:12] != seen[12:]  # a new order every epoch
    again = pools.UnlabeledPool(np.arange(12), block=4, prepare=lambda b: (b,), seed=3)
    resumed = [int(v) for block, in again.stream(4).take(2) for v in block]
    assert resumed == seen[16:24]  # block 4 built directly, as a resume builds it
    every_other = [int(v) for block, in pool.stream(1, step=2).take(2) for v in block]
    assert every_other == seen[4:8] + seen[12:16]


def test_a_pool_smaller_than_a_block_repeats_its_examples():
    pool = pools.UnlabeledPool(np.arange(3), block=8, prepare=lambda b: (b,), seed=0)
    block, = next(iter(pool.stream(0)))
    assert block.shape == (8,) and set(block.numpy().tolist()) == {0, 1, 2}


def test_image_views_differ_and_replay_with_the_seed():
    images = pl.datasets.fashion_mnist().train.images[:16]
    method = pl.semi.Consistency(ratio=1)
    inputs = pools.unlabeled_inputs("unlabeled", images, "image", None)

    def first_block(seed):
        pool = pools.pool_for(inputs, method, "image", None, batch_size=8)
        return [v.numpy() for v in next(iter(pool.with_seed(seed).stream(0)))]

    weak, strong = first_block(1)
    assert weak.shape == strong.shape == (8, 28, 28, 1) and 0 <= weak.min() <= weak.max() <= 1
    assert np.abs(weak - strong).mean() > 0.01
    again = first_block(1)
    assert np.array_equal(again[0], weak) and np.array_equal(again[1], strong)
    assert not np.array_equal(first_block(2)[1], strong)


def test_token_replacement_keeps_special_tokens_and_padding():
    tok = pl.text.WordPieceTokenizer.train(["a small dog barks", "the cat sleeps"],
                                           vocab_size=40)
    batch = pl.text.TextPreprocessor(tok, 10)(["a small dog barks"] * 200)
    ids = batch["token_ids"].numpy()
    with randomness.batch_seed(tf.constant([0, 1])):  # as the pool draws it
        replaced = token_replacer(tok, 0.3)(batch)["token_ids"].numpy()
    special = np.isin(ids, tok.special_ids)
    assert np.array_equal(replaced[special], ids[special])
    changed = (replaced != ids)[~special].mean()
    assert 0.15 < changed < 0.35  # 0.3 drawn, some replaced by the same word piece
    masked = (replaced == tok.mask_id)[~special].mean()
    assert 0.1 < masked < 0.2


@pytest.fixture(scope="module")
def text_task():
    wn = pl.datasets.wordnet_supersenses()
    tok = pl.text.WordPieceTokenizer.train(wn.train.texts[:500], vocab_size=200)
    return wn, tok


def text_fine_tuner(tok, **kwargs):
    keras.utils.set_random_seed(0)
    encoder = pl.backbones.TextEncoder(tok.vocab_size, num_layers=1, hidden_dim=16,
                                       num_heads=2, max_sequence_length=16)
    ft = pl.FineTuner(encoder, pl.heads.Classifier(26),
                      preprocessor=pl.text.TextPreprocessor(tok, 16), **kwargs)
    ft.compile(learning_rate=1e-3)
    return ft


@pytest.mark.slow
def test_text_consistency_fits_saves_and_reloads(text_task, tmp_path):
    wn, tok = text_task
    method = pl.semi.Consistency(threshold=0.05, ratio=2, token_replacement=0.3)
    ft = text_fine_tuner(tok, semi_supervised=method)
    history = ft.fit(wn.train.texts[:32], wn.train.labels[:32], batch_size=8,
                     unlabeled=wn.unlabeled[:40], epochs=2, verbose=0)
    assert history.history["pseudo_label_rate"][-1] > 0
    assert np.isfinite(history.history["unlabeled_loss"]).all()
    ft.save(tmp_path / "ft.keras")
    again = keras.saving.load_model(tmp_path / "ft.keras")
    assert again.semi_supervised.get_config() == method.get_config()
    texts = wn.test.texts[:4]
    np.testing.assert_allclose(again.predict(texts, verbose=0), ft.predict(texts, verbose=0),
                               atol=1e-5)
    later = ft.fit(wn.train.texts[:32], wn.train.labels[:32], epochs=1, verbose=0)
    assert "unlabeled_loss" not in later.history  # without a pool, a plain fit


@pytest.mark.slow
def test_with_weight_zero_the_pool_changes_nothing_that_trains(text_task):
    """No dropout: the unlabeled passes then draw nothing and move nothing, so the
    weights are those of the same run without the pool."""
    wn, tok = text_task
    texts, labels = wn.train.texts[:32], wn.train.labels[:32]

    def run(**fit):
        keras.utils.set_random_seed(0)
        encoder = pl.backbones.TextEncoder(tok.vocab_size, num_layers=1, hidden_dim=16,
                                           num_heads=2, max_sequence_length=16, dropout=0.0)
        ft = pl.FineTuner(encoder, pl.heads.Classifier(26, dropout=0.0),
                          policy=pl.freezing.FullFineTune(),
                          preprocessor=pl.text.TextPreprocessor(tok, 16),
                          semi_supervised=pl.semi.PseudoLabel(threshold=0.01, weight=0.0))
        ft.compile(learning_rate=1e-3)
        ft.fit(texts, labels, batch_size=8, epochs=2, shuffle=False, verbose=0, **fit)
        return ft

    plain, pooled = run(), run(unlabeled=wn.unlabeled[:16])
    assert pooled.history.history["pseudo_label_rate"][-1] == 1.0  # it did read the pool
    for a, b in zip(plain.weights, pooled.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


@pytest.mark.parametrize("threshold", [0, -0.1, 1.5, "high", True])
def test_a_threshold_outside_zero_one_is_refused(threshold):
    with pytest.raises(ValueError, match="`threshold` must be a probability in \\(0, 1\\]"):
        pl.semi.PseudoLabel(threshold=threshold)


def test_bad_arguments_of_the_methods_are_refused():
    with pytest.raises(ValueError, match="`ratio`"):
        pl.semi.PseudoLabel(ratio=0)
    with pytest.raises(ValueError, match="`weight`"):
        pl.semi.Consistency(weight=-1)
    with pytest.raises(ValueError, match="`token_replacement`"):
        pl.semi.Consistency(token_replacement=1.0)
    with pytest.raises(TypeError, match="`strong`"):
        pl.semi.Consistency(strong=["flip"])
    with pytest.raises(TypeError, match="`semi_supervised`"):
        pl.FineTuner(pl.backbones.ConvNet(widths=(4,)), pl.heads.Classifier(2),
                     semi_supervised="fixmatch")


def image_fine_tuner(head=None, **kwargs):
    ft = pl.FineTuner(pl.backbones.ConvNet(widths=(4,)), head or pl.heads.Classifier(10),
                      **kwargs)
    ft.compile(learning_rate=1e-3)
    return ft


@pytest.mark.parametrize("unlabeled, message", [
    ([], "`unlabeled` is empty"),
    (np.zeros((0, 28, 28), "uint8"), "`unlabeled` is empty"),
    (np.zeros((4, 28), "uint8"), "`unlabeled` must be images"),
    (np.zeros((4, 20, 20), "uint8"), "unlabeled"),
])
def test_bad_pools_are_refused_before_any_step(unlabeled, message):
    part = pl.datasets.fashion_mnist().train.sample(16, seed=0)
    ft = image_fine_tuner()
    before = [w.numpy() for w in ft.weights]
    with pytest.raises(ValueError, match=message):
        ft.fit(part.images / 255, part.labels, unlabeled=unlabeled, verbose=0)
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, ft.weights))
    assert int(ft.optimizer.iterations.numpy()) == 0


def test_a_labeled_dataset_as_pool_and_other_misuses_are_refused(text_task):
    part = pl.datasets.fashion_mnist().train.sample(16, seed=0)
    labeled = pl.data.image_dataset(part.images, part.labels, batch_size=8)
    with pytest.raises(ValueError, match="holds inputs only"):
        image_fine_tuner().fit(labeled, unlabeled=labeled, verbose=0)
    regression = image_fine_tuner(pl.heads.Regressor())
    with pytest.raises(ValueError, match="needs one classification head"):
        regression.fit(part.images / 255, part.labels / 10.0, unlabeled=part.images,
                       verbose=0)
    with pytest.raises(ValueError, match="cache_features=True"):
        image_fine_tuner().fit(labeled, unlabeled=part.images, cache_features=True,
                               verbose=0)
    wn, tok = text_task
    encoder = pl.backbones.TextEncoder(tok.vocab_size, num_layers=1, hidden_dim=16,
                                       num_heads=2, max_sequence_length=16)
    ft = pl.FineTuner(encoder, pl.heads.Classifier(26),
                      semi_supervised=pl.semi.Consistency())
    ft.compile()
    data = pl.data.text_dataset(wn.train.texts[:16], tok, wn.train.labels[:16],
                                sequence_length=16)
    pool = pl.data.text_dataset(wn.unlabeled[:16], tok, sequence_length=16)
    with pytest.raises(ValueError, match="needs the tokenizer"):
        ft.fit(data, unlabeled=pool, verbose=0)


@pytest.mark.slow
def test_a_pool_dataset_of_your_own_is_read_in_its_order(text_task):
    wn, tok = text_task
    ft = text_fine_tuner(tok, semi_supervised=pl.semi.PseudoLabel(threshold=0.05))
    data = pl.data.text_dataset(wn.train.texts[:24], tok, wn.train.labels[:24],
                                batch_size=8, sequence_length=16)
    pool = pl.data.text_dataset(wn.unlabeled[:20], tok, batch_size=5, sequence_length=16)
    history = ft.fit(data, unlabeled=pool, epochs=2, verbose=0)
    assert len(history.history["unlabeled_loss"]) == 2


def constant_teacher(ft, logits):
    """A model on the FineTuner's inputs that always gives `logits`."""
    inputs = {name: keras.Input(tensor.shape[1:], dtype=tensor.dtype, name=name)
              for name, tensor in ft.input.items()}
    row = tf.constant([logits], "float32")
    out = keras.layers.Lambda(lambda x: tf.tile(row, [tf.shape(x["token_ids"])[0], 1]))(
        inputs)
    return keras.Model(inputs, out)


@pytest.mark.slow
def test_a_teacher_gives_the_pseudo_labels(text_task):
    wn, tok = text_task
    probe = text_fine_tuner(tok)
    teacher = constant_teacher(probe, [0.0] * 25 + [8.0])  # always class 25, surely
    ft = text_fine_tuner(tok, semi_supervised=pl.semi.PseudoLabel(
        threshold=0.9, weight=5.0, teacher=teacher))
    history = ft.fit(wn.train.texts[:16], wn.train.labels[:16], batch_size=8,
                     unlabeled=wn.unlabeled[:64], epochs=4, verbose=0)
    assert history.history["pseudo_label_rate"] == [1.0] * 4
    predicted = ft.predict(wn.unlabeled[100:140], verbose=0).argmax(-1)
    # Class 25 is never a training label: only the teacher taught it.
    assert np.bincount(predicted, minlength=26).argmax() == 25
    assert 25 not in set(wn.train.labels[:16])
    wrong = constant_teacher(probe, [0.0, 1.0])
    student = text_fine_tuner(tok, semi_supervised=pl.semi.PseudoLabel(teacher=wrong))
    with pytest.raises(ValueError, match="the teacher must classify into the same classes"):
        student.fit(wn.train.texts[:16], wn.train.labels[:16], unlabeled=wn.unlabeled[:8],
                    verbose=0)
