"""pl.hub: backbones from SavedModels, .keras files and KerasHub presets fine-tune and
export back; every model here is built and saved by the test itself (offline)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import pretrainlib as pl


def snapshot(model):
    return [np.array(w) for w in model.weights]


def changed(before, model):
    return any(not np.array_equal(a, np.array(b)) for a, b in zip(before, model.weights))


def fine_tune(backbone, data, policy=None, epochs=3):
    ft = pl.FineTuner(backbone, pl.heads.Classifier(6), policy=policy)
    ft.compile(learning_rate=3e-3)
    before = snapshot(backbone)
    losses = ft.fit(data, epochs=epochs, verbose=0).history["loss"]
    return ft, losses, changed(before, backbone)


def exports_back(backbone, x, path, feature="pooled_output"):
    """`pl.hub.export` then `load_backbone` gives the fine-tuned backbone's outputs."""
    pl.hub.export(backbone, path)
    np.testing.assert_allclose(pl.hub.load_backbone(path)(x)[feature], backbone(x)[feature],
                               atol=1e-5)


@pytest.mark.slow
def test_keras_export_fine_tunes_under_a_policy_and_exports_back(tiny_encoder, labeled, tmp_path):
    import tensorflow_hub as hub

    encoder = tiny_encoder()
    encoder.export(str(tmp_path / "exported"), verbose=False)  # Keras 3's own SavedModel
    backbone = pl.hub.load_backbone(tmp_path / "exported")
    data = labeled(64, shuffle=False)
    x = next(iter(data))[0]
    np.testing.assert_allclose(backbone(x)["pooled_output"], encoder(x)["pooled_output"],
                               atol=1e-5)
    _, losses, trained = fine_tune(backbone, data,
                                   pl.freezing.FreezeThenUnfreeze(1, backbone_lr_multiplier=0.5))
    assert trained and losses[-1] < losses[0], losses
    # Export the fine-tuned backbone: TF Hub and load_backbone read the same outputs.
    path = pl.hub.export(backbone, tmp_path / "fine_tuned")
    expected = backbone(x)["pooled_output"]
    reloaded = hub.load(path)  # kept: its functions need its variables alive
    np.testing.assert_allclose(reloaded.serve(x)["pooled_output"], expected, atol=1e-5)
    np.testing.assert_allclose(pl.hub.load_backbone(path)(x)["pooled_output"], expected,
                               atol=1e-5)


class DenseModule(tf.Module):
    """A TF2 SavedModel as TF Hub modules are: tf.Variables and a traced __call__."""

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(0)
        self.kernel = tf.Variable(rng.normal(size=(8, 16)).astype("float32") * 0.3)
        self.bias = tf.Variable(tf.zeros([16]))

    @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32, name="x")])
    def __call__(self, x):
        return {"pooled_output": tf.nn.relu(x @ self.kernel + self.bias)}


def test_tf_module_saved_model_fine_tunes_by_call_or_by_signature(tmp_path):
    module = DenseModule()
    tf.saved_model.save(module, str(tmp_path / "module"),
                        signatures={"serving_default": module.__call__})
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 8)).astype("float32")
    y = (x[:, :6].argmax(1)).astype("int32")  # learnable from the features
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    backbone = pl.hub.load_backbone(tmp_path / "module")
    assert sorted(w.name for w in backbone.weights) == ["Variable", "Variable_"]
    np.testing.assert_allclose(backbone(x[:4])["pooled_output"],
                               module(x[:4])["pooled_output"], atol=1e-6)
    _, losses, trained = fine_tune(backbone, data, epochs=4)
    assert trained and losses[-1] < losses[0], losses
    # Through the serving signature instead of __call__: the same function (read
    # from disk again, so with the saved weights, not the fine-tuned ones).
    by_signature = pl.hub.load_backbone(tmp_path / "module", endpoint="serving_default")
    np.testing.assert_allclose(by_signature(x[:4])["pooled_output"],
                               module(x[:4])["pooled_output"], atol=1e-6)  # as saved
    exports_back(backbone, x[:4], tmp_path / "fine_tuned")


def test_keras_file_gives_the_pretrainers_backbone_frozen_on_request(tiny_encoder, tokenizer,
                                                                    tmp_path):
    pre = pl.Pretrainer(tiny_encoder(), pl.objectives.MaskedLM(tokenizer=tokenizer))
    pre.save(tmp_path / "pre.keras")
    backbone = pl.hub.load_backbone(tmp_path / "pre.keras", trainable=False)
    assert isinstance(backbone, pl.backbones.TextEncoder)
    assert backbone.trainable_weights == [] and len(backbone.weights) > 10
    for a, b in zip(backbone.weights, pre.backbone.weights):
        np.testing.assert_array_equal(np.array(a), np.array(b))


@pytest.mark.slow
def test_keras_file_backbone_fine_tunes_and_exports_back(tiny_encoder, labeled, tokenizer,
                                                         tmp_path):
    pl.Pretrainer(tiny_encoder(), pl.objectives.MaskedLM(tokenizer=tokenizer)).save(
        tmp_path / "pre.keras")
    backbone = pl.hub.load_backbone(tmp_path / "pre.keras")
    data = labeled(64, shuffle=False)
    _, losses, trained = fine_tune(backbone, data, pl.freezing.GradualUnfreeze(1))
    assert trained and losses[-1] < losses[0], losses
    exports_back(backbone, next(iter(data))[0], tmp_path / "fine_tuned")


def test_keras_hub_preset_directory_loads_its_backbone(tmp_path):
    import keras_hub

    keras.utils.set_random_seed(0)
    bert = keras_hub.models.BertBackbone(vocabulary_size=50, num_layers=1, num_heads=2,
                                         hidden_dim=16, intermediate_dim=32,
                                         max_sequence_length=8)
    bert.save_to_preset(str(tmp_path / "preset"))
    backbone = pl.hub.load_backbone(tmp_path / "preset")
    assert isinstance(backbone, keras_hub.models.BertBackbone)
    x = {"token_ids": np.ones((2, 8), "int32"), "segment_ids": np.zeros((2, 8), "int32"),
         "padding_mask": np.ones((2, 8), "int32")}
    np.testing.assert_allclose(backbone(x)["pooled_output"], bert(x)["pooled_output"],
                               atol=1e-6)


@pytest.mark.slow
def test_keras_hub_preset_fine_tunes_and_exports_back(labeled, tokenizer, tmp_path):
    import keras_hub

    keras.utils.set_random_seed(0)
    keras_hub.models.BertBackbone(
        vocabulary_size=tokenizer.vocab_size, num_layers=2, num_heads=2, hidden_dim=32,
        intermediate_dim=64, max_sequence_length=32, dropout=0.0,
    ).save_to_preset(str(tmp_path / "preset"))
    backbone = pl.hub.load_backbone(tmp_path / "preset")
    data = labeled(64, shuffle=False)
    ft, losses, trained = fine_tune(backbone, data, pl.freezing.LayerwiseLRDecay(0.8))
    assert trained and losses[-1] < losses[0], losses
    x = next(iter(data))[0]
    x = {**x, "segment_ids": tf.zeros_like(x["token_ids"])}  # the backbone's own inputs
    exports_back(backbone, x, tmp_path / "fine_tuned")


def test_bad_handles_and_export_paths_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="handle.*nowhere"):
        pl.hub.load_backbone(tmp_path / "nowhere")
    with pytest.raises(TypeError, match="handle"):
        pl.hub.load_backbone(3)
    module = DenseModule()
    tf.saved_model.save(module, str(tmp_path / "module"))
    with pytest.raises(ValueError, match="endpoint.*missing.*__call__"):
        pl.hub.load_backbone(tmp_path / "module", endpoint="missing")
    class TwoInputs(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2]), tf.TensorSpec([None, 2])])
        def __call__(self, a, b):
            return a + b

    tf.saved_model.save(TwoInputs(), str(tmp_path / "two"))
    with pytest.raises(ValueError, match="one tensor or a dict.*SavedModelLayer"):
        pl.hub.load_backbone(tmp_path / "two")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    inputs = keras.Input((3,))
    with pytest.raises(FileExistsError, match="path"):
        pl.hub.export(keras.Model(inputs, keras.layers.Dense(2)(inputs)), tmp_path / "full")
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]  # untouched
    with pytest.raises(TypeError, match="`model` must be a keras.Model"):
        pl.hub.export("not a model", tmp_path / "new")
