"""pl.tune.find_learning_rate: the range test runs on a copy (the model is untouched),
its rates rise geometrically, it stops when the loss diverges, the valley rule picks
where the loss falls longest; FineTuner and Pretrainer; bad arguments fail first."""

import keras
import numpy as np
import pytest

import pretrainlib as pl


def test_valley_reads_the_longest_fall_past_its_middle():
    rates = np.geomspace(1e-6, 1, 13)
    #        flat ......  falling steadily for 8 points ...........  cliff
    losses = [2.0, 2.0, 2.0, 1.95, 1.8, 1.6, 1.3, 1.0, 0.8, 0.7, 0.65, 2.0, 9.0]
    # Longest decreasing run: indexes 2..10 (9 points); a third is 8/3: 2 + 2 + 1 = 5.
    assert pl.tune.valley(rates, losses) == pytest.approx(rates[5])
    with pytest.raises(ValueError, match="recorded 1 loss"):
        pl.tune.valley(rates[:1], losses[:1])


@pytest.fixture
def fine_tuner(tiny_encoder, tokenizer):
    ft = pl.FineTuner(tiny_encoder(), pl.heads.Classifier(6),
                      policy=pl.freezing.FreezeThenUnfreeze(1),
                      preprocessor=pl.text.TextPreprocessor(tokenizer, sequence_length=32))
    ft.compile(learning_rate=1e-3)
    return ft


@pytest.fixture
def labeled_texts(wordnet):
    part = wordnet.train.sample(120, seed=0)
    return list(part.texts), np.asarray(part.labels)


@pytest.mark.slow
def test_the_range_test_leaves_the_model_untouched_and_suggests_a_rate(
        fine_tuner, labeled_texts, tmp_path):
    before = [np.array(v) for v in fine_tuner.weights]
    keras.utils.set_random_seed(0)
    found = pl.tune.find_learning_rate(fine_tuner, *labeled_texts, batch_size=16,
                                       min_lr=1e-5, max_lr=1e3, steps=40)
    keras.utils.set_random_seed(0)  # the default is the policy's last stage
    last = pl.tune.find_learning_rate(fine_tuner, *labeled_texts, batch_size=16,
                                      min_lr=1e-5, max_lr=1e3, steps=40, stage=1)
    np.testing.assert_allclose(found.raw_losses, last.raw_losses, rtol=1e-5)
    keras.utils.set_random_seed(0)
    head = pl.tune.find_learning_rate(fine_tuner, *labeled_texts, batch_size=16,
                                      min_lr=1e-5, max_lr=1e3, steps=40, stage=0)
    assert not np.allclose(head.raw_losses[:10], found.raw_losses[:10])
    assert all(np.array_equal(a, np.array(v)) for a, v in zip(before, fine_tuner.weights))
    assert int(fine_tuner.optimizer.iterations.numpy()) == 0
    assert fine_tuner.epochs_trained == 0 and fine_tuner.current_stage is None
    rates = found.learning_rates
    assert rates[0] == pytest.approx(1e-5)
    np.testing.assert_allclose(rates[1:] / rates[:-1], (1e3 / 1e-5) ** (1 / 39), rtol=1e-6)
    # Rates far above 1 blow the loss up: the test stops before its 40 steps.
    assert 10 < len(rates) < 40
    assert found.losses[-1] > 4 * found.losses.min() or not np.isfinite(found.raw_losses[-1])
    assert 1e-5 <= found.suggestion <= rates[-1]
    assert found.suggestion == pl.tune.valley(rates, found.losses)
    found.plot(tmp_path / "lr.png")
    assert (tmp_path / "lr.png").stat().st_size > 5000
    assert "suggested learning rate" in str(found)


@pytest.mark.slow
def test_a_pretrainer_gets_a_suggestion_too(tiny_encoder, tokenizer, glosses):
    pre = pl.Pretrainer(tiny_encoder(), pl.objectives.MaskedLM(tokenizer=tokenizer))
    pre.compile()
    data = pl.data.text_dataset(glosses[:400], tokenizer, batch_size=16, sequence_length=32,
                                pack=True, seed=0)
    found = pl.tune.find_learning_rate(pre, data, min_lr=1e-5, max_lr=1.0, steps=20)
    assert len(found.learning_rates) >= 10 and np.isfinite(found.suggestion)


def test_bad_range_test_arguments_fail_before_any_step(fine_tuner, labeled_texts, tiny_encoder):
    x, y = labeled_texts
    uncompiled = pl.FineTuner(tiny_encoder(), pl.heads.Classifier(6))
    with pytest.raises(ValueError, match="`model` must be a compiled model.*compile"):
        pl.tune.find_learning_rate(uncompiled, x, y)
    cases = [(dict(min_lr=0), "`min_lr` must be a positive number"),
             (dict(min_lr=1e-3, max_lr=1e-4), "`max_lr` must be a number above min_lr"),
             (dict(steps=5), "`steps` must be at least 10"),
             (dict(stop_factor=1.0), "`stop_factor` must be a number above 1"),
             (dict(smoothing=1.0), r"`smoothing` must be a number in \[0, 1\)"),
             (dict(stage=2), "`stage` must be below the policy's 2 stages")]
    for arguments, message in cases:
        with pytest.raises(ValueError, match=message):
            pl.tune.find_learning_rate(fine_tuner, x, y, **arguments)
    with pytest.raises(ValueError, match="`x` is required"):
        pl.tune.find_learning_rate(fine_tuner)
    pre = pl.Pretrainer(keras.Sequential([keras.Input((4,)), keras.layers.Dense(4)]),
                        pl.objectives.Autoencoder())
    pre.compile()
    with pytest.raises(ValueError, match="`stage` is for a FineTuner"):
        pl.tune.find_learning_rate(pre, np.zeros((8, 4), "float32"), stage=0)


@pytest.mark.slow
def test_search_tries_every_setting_on_a_fresh_copy_and_keeps_the_best(
        fine_tuner, labeled_texts, wordnet):
    x, y = labeled_texts
    part = wordnet.validation.sample(60, seed=0)
    val = (list(part.texts), np.asarray(part.labels))
    before = [np.array(v) for v in fine_tuner.weights]
    policies = [pl.freezing.FeatureExtraction(), pl.freezing.FullFineTune()]
    result = pl.tune.search(fine_tuner, x, y, validation_data=val, batch_size=16,
                            learning_rate=[1e-3, 1e-2], policy=policies, epochs=[3],
                            patience=2)
    assert all(np.array_equal(a, np.array(v)) for a, v in zip(before, fine_tuner.weights))
    assert [(t.params["learning_rate"], type(t.params["policy"]).__name__)
            for t in result.trials] == [(1e-3, "FeatureExtraction"), (1e-3, "FullFineTune"),
                                        (1e-2, "FeatureExtraction"), (1e-2, "FullFineTune")]
    assert result.mode == "max" and result.best.score == max(t.score for t in result.trials)
    # The best model holds its best epoch's weights: it scores what the trial recorded.
    assert result.best_model is not fine_tuner
    assert type(result.best_model.policy) is type(result.best.params["policy"])
    scored = result.best_model.evaluate(*val, verbose=0, return_dict=True)["macro_f1"]
    assert scored == pytest.approx(result.best.score, abs=1e-5)
    table = result.to_markdown().splitlines()
    assert table[0].startswith("| learning_rate | policy | epochs | val_macro_f1 |")
    assert len(table) == 6


@pytest.mark.slow
def test_bad_search_arguments_fail_before_any_trial(fine_tuner, labeled_texts, tiny_encoder):
    x, y = labeled_texts
    with pytest.raises(ValueError, match="`validation_data` is required"):
        pl.tune.search(fine_tuner, x, y)
    for arguments, message in [
            (dict(learning_rate=[]), "`learning_rate` must be one or a list of rates"),
            (dict(epochs=[0]), "`epochs` must be one or a list of positive integers"),
            (dict(policy=["all"]), "`policy` must be one or a list of pl.freezing policies"),
            (dict(mode="up"), "`mode` must be 'max', 'min' or 'auto'"),
            (dict(patience=0), "`patience` must be a positive integer")]:
        with pytest.raises(ValueError, match=message):
            pl.tune.search(fine_tuner, x, y, validation_data=(x, y), **arguments)
    adam = pl.FineTuner(tiny_encoder(), pl.heads.Classifier(6),
                        preprocessor=fine_tuner.preprocessor)
    adam.compile(keras.optimizers.Adam(1e-3))
    with pytest.raises(ValueError, match="optimizer string"):
        pl.tune.search(adam, x, y, validation_data=(x, y))
    with pytest.raises(ValueError, match="`monitor='val_nothing'` is not among"):
        pl.tune.search(fine_tuner, x, y, validation_data=(x, y), epochs=1,
                       monitor="val_nothing", mode="max")


@pytest.mark.slow
def test_compare_policies_scores_each_policy_s_validation_choice_once_on_test(
        fine_tuner, labeled_texts, wordnet):
    x, y = labeled_texts
    part = wordnet.validation.sample(60, seed=0)
    val = (list(part.texts), np.asarray(part.labels))
    test_part = wordnet.test.sample(60, seed=0)
    test = (list(test_part.texts), np.asarray(test_part.labels))
    before = [np.array(v) for v in fine_tuner.weights]
    comparison = pl.tune.compare_policies(
        fine_tuner, x, y, validation_data=val, test_data=test, batch_size=16, epochs=2,
        patience=1, policies=[pl.freezing.FeatureExtraction(), pl.freezing.LoRA(rank=2),
                              pl.freezing.FullFineTune()],
        learning_rate={"FeatureExtraction()": [1e-2], "LoRA(rank=2)": [1e-2, 3e-3],
                       "FullFineTune()": [1e-3]})
    assert all(np.array_equal(a, np.array(v)) for a, v in zip(before, fine_tuner.weights))
    rows = {r.name: r for r in comparison.results}
    assert list(rows) == ["FeatureExtraction()", "LoRA(rank=2)", "FullFineTune()"]
    assert rows["LoRA(rank=2)"].learning_rate in (1e-2, 3e-3)
    # Fewest weights: the head alone; LoRA adds its low-rank matrices; all of them.
    params = [rows[name].trainable_params for name in rows]
    assert params[0] < params[1] < params[2]
    evaluator = pl.Evaluator(["accuracy", "macro_f1"])
    test_data = fine_tuner.preprocessor.dataset(*test, batch_size=16, shuffle=False)
    for name, row in rows.items():
        again = evaluator.evaluate(comparison.models[name], test_data).metrics
        assert again == pytest.approx(row.test, abs=1e-9)
    assert comparison.best.validation == max(r.validation for r in comparison.results)
    assert comparison.to_markdown().count("\n") == 4


def test_bad_policy_comparisons_fail_before_any_trial(fine_tuner, labeled_texts):
    x, y = labeled_texts
    data = dict(validation_data=(x, y), test_data=(x, y))
    for arguments, message in [
            (dict(policies=[]), "`policies` is empty"),
            (dict(policies=["FullFineTune"]), "must hold pl.freezing policies or transforms"),
            (dict(policies=[pl.freezing.BitFit()], learning_rate={"LoRA()": [1e-3]}),
             "no rates for 'BitFit\\(\\)'"),
            (dict(policies=[pl.freezing.BitFit(), pl.freezing.BitFit()]), "the same name")]:
        with pytest.raises(ValueError, match=message):
            pl.tune.compare_policies(fine_tuner, x, y, **data, **arguments)
    with pytest.raises(ValueError, match="`test_data` is required"):
        pl.tune.compare_policies(fine_tuner, x, y, validation_data=(x, y),
                                 policies=[pl.freezing.BitFit()])
    with pytest.raises(ValueError, match="`test_data` must be a tf.data.Dataset"):
        pl.tune.compare_policies(fine_tuner, x, y, validation_data=(x, y), test_data=[x, y],
                                 policies=[pl.freezing.BitFit()])
    adapted = pl.FineTuner(pl.backbones.clone(fine_tuner.backbone), pl.heads.Classifier(6),
                           adapters=pl.freezing.BitFit(), preprocessor=fine_tuner.preprocessor)
    adapted.compile()
    with pytest.raises(ValueError, match="already has `adapters`"):
        pl.tune.search(adapted, x, y, validation_data=(x, y), policy=[pl.freezing.LoRA(2)])
    with pytest.raises(ValueError, match="must be a pl.FineTuner"):
        pl.tune.compare_policies(keras.Sequential([keras.layers.Dense(2)]), x, y, **data,
                                 policies=[pl.freezing.BitFit()])
