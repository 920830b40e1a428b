import keras
import numpy as np
import pytest

import pretrainlib as pl


@pytest.mark.slow
def test_fine_tuner_learns_wordnet_supersenses(tiny_encoder, labeled):
    ft = pl.FineTuner(tiny_encoder(), pl.heads.Classifier(6), policy=pl.freezing.FullFineTune())
    ft.compile(learning_rate=3e-3)
    history = ft.fit(labeled(n=192), epochs=6, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0] - 0.2
    assert set(history.history) >= {"loss", "accuracy", "macro_f1"}


def test_num_classes_smaller_than_labels_is_rejected(tiny_encoder, labeled):
    ft = pl.FineTuner(tiny_encoder(), pl.heads.Classifier(3))
    ft.compile()
    with pytest.raises(ValueError, match="num_classes"):
        ft.fit(labeled(), epochs=1, verbose=0)


def test_fine_tuner_round_trips_through_keras_format(tiny_encoder, labeled, tmp_path):
    ft = pl.FineTuner(tiny_encoder(), pl.heads.Classifier(6),
                      policy=pl.freezing.FreezeThenUnfreeze(freeze_epochs=2))
    ft.compile()
    ds = labeled(shuffle=False)
    ft.fit(ds, epochs=1, verbose=0)
    ft.save(tmp_path / "ft.keras")
    restored = keras.saving.load_model(tmp_path / "ft.keras")
    assert isinstance(restored, pl.FineTuner)
    assert restored.policy.get_config() == ft.policy.get_config()
    x, _ = next(iter(ds))
    np.testing.assert_allclose(restored.predict_on_batch(x), ft.predict_on_batch(x), atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, error, fragment",
    [
        (dict(backbone="bert"), TypeError, "backbone"),
        (dict(head="classifier"), TypeError, "head"),
        (dict(policy="freeze"), TypeError, "policy"),
    ],
)
def test_bad_constructor_arguments(tiny_encoder, kwargs, error, fragment):
    call = dict(backbone=tiny_encoder(), head=pl.heads.Classifier(2))
    call.update(kwargs)
    with pytest.raises(error, match=fragment):
        pl.FineTuner(**call)


@pytest.mark.parametrize("num_classes", [1, 0, 2.5])
def test_classifier_needs_two_or_more_classes(num_classes):
    with pytest.raises(ValueError, match="num_classes"):
        pl.heads.Classifier(num_classes)


def test_learning_rate_with_optimizer_instance_is_rejected(tiny_encoder):
    ft = pl.FineTuner(tiny_encoder(), pl.heads.Classifier(2))
    with pytest.raises(ValueError, match="learning_rate"):
        ft.compile(optimizer=keras.optimizers.Adam(), learning_rate=1e-3)


def test_fit_rejects_unlabeled_data(tiny_encoder, tokenizer):
    ft = pl.FineTuner(tiny_encoder(), pl.heads.Classifier(2))
    ft.compile()
    ds = pl.data.text_dataset(["a dog", "a cat"], tokenizer, sequence_length=8)
    with pytest.raises(ValueError, match="labels"):
        ft.fit(ds, verbose=0)


def test_summary_says_backbone_head_policy_stage_and_what_trains(tiny_encoder, tokenizer):
    lines = []
    ft = pl.FineTuner(tiny_encoder(), pl.heads.Classifier(6),
                      policy=pl.freezing.FreezeThenUnfreeze(freeze_epochs=1))
    assert ft.summary(print_fn=lines.append) is None
    text = lines[0]
    assert 'TextEncoder "text_encoder' in text and "groups embeddings, block_0, block_1" in text
    assert "Classifier(num_classes=6): 198 params" in text  # 32 * 6 + 6
    assert "FreezeThenUnfreeze(), in stage 0 of 2" in text
    assert "trainable  198 of" in text
    ft.summary(print_fn=lambda line, **_: lines.append(line), layers=True)
    assert len(lines) > 2 and "Total params" in "\n".join(lines[2:])  # Keras's table
    pre = pl.Pretrainer(tiny_encoder(), pl.objectives.MaskedLM(tokenizer=tokenizer))
    lines.clear()
    pre.summary(print_fn=lines.append)
    assert "objective  MaskedLM(" in lines[0] and "trainable" in lines[0]
