"""Multi-task fine-tuning: one backbone, a dict of named heads (`pl.heads.Heads`),
labels as a dict, the loss a weighted sum of the heads' losses, metrics and Evaluator
reports per head, saving, feature caching and the bad-input errors. MirroredStrategy,
reload and quantized export: the `head/Heads` case of tests/harness.py."""

import keras
import numpy as np
import pytest

import pretrainlib as pl


@pytest.fixture(scope="module")
def task():
    wn = pl.datasets.wordnet_supersenses()
    part = wn.train.sample(96, seed=0)
    texts = list(part.texts)
    labels = {"supersense": [wn.class_names[i] for i in part.labels],  # names
              "long": [int(len(t) > 60) for t in texts]}                # ids
    tok = pl.text.WordPieceTokenizer.train(texts, vocab_size=200)
    return texts, labels, tok


def fine_tuner(tok, policy=None, seed=0):
    keras.utils.set_random_seed(seed)
    encoder = pl.backbones.TextEncoder(tok.vocab_size, num_layers=1, hidden_dim=16,
                                       num_heads=2, max_sequence_length=16, dropout=0.0)
    heads = {"supersense": pl.heads.Classifier(6, dropout=0.0),
             "long": pl.heads.Classifier(2, dropout=0.0)}
    return pl.FineTuner(encoder, heads, policy=policy or pl.freezing.FullFineTune())


def dataset(texts, labels, tok, shuffle=True):
    return pl.data.text_dataset(texts, tok, labels=labels, batch_size=16,
                                sequence_length=16, shuffle=shuffle, seed=0)


@pytest.mark.slow
def test_the_loss_is_the_weighted_sum_of_the_heads_losses(task):
    texts, labels, tok = task
    ft = fine_tuner(tok)
    ft.compile(learning_rate=1e-3, loss_weights={"supersense": 1.0, "long": 0.25})
    history = ft.fit(dataset(texts, labels, tok), epochs=2, verbose=0)
    assert {"supersense_loss", "long_loss", "supersense_macro_f1",
            "long_accuracy"} <= set(history.history)
    assert history.history["loss"][-1] < history.history["loss"][0]
    scores = ft.evaluate(dataset(texts, labels, tok, shuffle=False), return_dict=True,
                         verbose=0)
    assert scores["loss"] == pytest.approx(
        scores["supersense_loss"] + 0.25 * scores["long_loss"], rel=1e-5)


@pytest.mark.slow
def test_each_head_gets_its_report_with_its_class_names(task, tmp_path):
    texts, labels, tok = task
    ft = fine_tuner(tok)
    ft.compile(learning_rate=3e-3)
    ft.fit(dataset(texts, labels, tok), epochs=3, verbose=0)
    assert sorted(ft.class_names) == ["supersense"]  # the named label set's names
    test = dataset(texts, labels, tok, shuffle=False)
    reports = pl.Evaluator(["accuracy", "macro_f1"]).evaluate(ft, test)
    assert sorted(reports) == ["long", "supersense"]
    predictions = ft.predict(test, verbose=0)
    ids = np.concatenate([y["long"] for _, y in test])
    expected = float(np.mean(predictions["long"].argmax(-1) == ids))
    assert reports["long"].metrics["accuracy"] == pytest.approx(expected)
    assert reports["supersense"].class_names == tuple(ft.class_names["supersense"])
    assert reports["long"].class_names is None
    ft.save(tmp_path / "multi.keras")
    again = keras.saving.load_model(tmp_path / "multi.keras")
    assert isinstance(again.head, pl.heads.Heads) and again.class_names == ft.class_names
    reloaded = again.predict(test, verbose=0)
    for name in predictions:
        np.testing.assert_allclose(reloaded[name], predictions[name], atol=1e-5)


@pytest.mark.slow
def test_the_heads_train_on_cached_features_as_on_the_backbone(task):
    texts, labels, tok = task
    weights = []
    for cache in (True, False):
        ft = fine_tuner(tok, policy=pl.freezing.FeatureExtraction())
        ft.compile(learning_rate=1e-2)
        ft.fit(dataset(texts, labels, tok), epochs=2, verbose=0, cache_features=cache)
        assert ft.fit_on_cached_features == cache
        weights.append([w.numpy() for w in ft.head.weights])
    for cached, uncached in zip(*weights):
        np.testing.assert_allclose(cached, uncached, atol=1e-5)


@pytest.mark.slow
def test_arrays_with_a_dict_of_labels_fit_too(task):
    texts, labels, tok = task
    rows = pl.text.TextPreprocessor(tok, 16)(texts)
    ft = fine_tuner(tok)
    ft.compile()
    y = {"supersense": np.arange(len(texts)) % 6, "long": np.asarray(labels["long"])}
    history = ft.fit({k: v.numpy() for k, v in rows.items()}, y, batch_size=16, epochs=1,
                     verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    lines = []
    ft.summary(print_fn=lines.append)
    assert any("Heads(supersense=Classifier(dropout=0.0, num_classes=6)" in line
               for line in lines), lines


def test_labels_that_do_not_name_the_heads_are_refused_before_any_step(task):
    texts, labels, tok = task
    ft = fine_tuner(tok)
    ft.compile()
    with pytest.raises(ValueError, match=r"labels as a dict with one entry per head "
                                         r"\['long', 'supersense'\]; it yields \['long'\]"):
        ft.fit(dataset(texts, {"long": labels["long"]}, tok), verbose=0)
    with pytest.raises(ValueError, match="labels as a dict"):
        ft.fit(dataset(texts, labels["long"], tok), verbose=0)
    wrong = {"supersense": [7] * len(texts), "long": labels["long"]}
    with pytest.raises(ValueError, match=r"`x\['supersense'\]` holds label 7"):
        ft.fit(dataset(texts, wrong, tok), verbose=0)
    assert int(ft.optimizer.iterations.numpy()) == 0
    with pytest.raises(ValueError, match="needs one classification head"):
        ft.fit(dataset(texts, labels, tok), unlabeled=texts, verbose=0)


def test_bad_heads_are_refused():
    with pytest.raises(ValueError, match="non-empty dict"):
        pl.heads.Heads({})
    with pytest.raises(ValueError, match="identifiers"):
        pl.heads.Heads({"super sense": pl.heads.Classifier(2)})
    with pytest.raises(TypeError, match=r"`heads\['a'\]` must be a Keras layer"):
        pl.heads.Heads({"a": "classifier"})
