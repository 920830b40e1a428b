"""Fine-tuning to write through a FineTuner: pl.heads.CausalLMHead owns no weights (it
reads through the backbone's token embedding, re-linked on load), its loss is the
CausalLM objective's on the same rows (prompt tokens ignored), the freezing policies
and LoRA decide what trains, the Generator writes with the fine-tuned model, and bad
input names itself."""

import functools

import keras
import keras_hub
import numpy as np
import pytest

import pretrainlib as pl

PROMPTS, TARGETS = ["one :", "two :"] * 16, ["a small dog", "the large cat"] * 16


@functools.lru_cache(maxsize=None)
def tokenizer():
    texts = pl.datasets.wordnet_supersenses().train.texts[:300]
    return pl.text.WordPieceTokenizer.train(texts, vocab_size=200)


def decoder(seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    config = dict(num_layers=1, hidden_dim=32, num_heads=2, max_sequence_length=24,
                  causal=True)
    return pl.backbones.TextEncoder(tokenizer().vocab_size, **{**config, **kwargs})


def rows(shuffle=True):
    return pl.data.prompt_dataset(PROMPTS, TARGETS, tokenizer(), batch_size=8,
                                  sequence_length=16, shuffle=shuffle, seed=0)


def fine_tuner(backbone=None, **kwargs):
    ft = pl.FineTuner(backbone or decoder(), pl.heads.CausalLMHead(), **kwargs)
    ft.compile(learning_rate=1e-2)
    return ft


def test_the_head_owns_no_weights_and_the_default_policy_trains_everything():
    ft = fine_tuner()
    assert ft.head.weights == [] and ft.head.token_embedding is ft.backbone.token_embedding
    assert isinstance(ft.policy, pl.freezing.FullFineTune)
    assert len(ft.weights) == len(ft.backbone.weights)  # the embedding counted once
    assert ft.count_params() == ft.backbone.count_params()


def test_its_loss_and_metrics_are_the_causal_lm_objective_s_on_the_same_rows():
    ft = fine_tuner()
    pre = pl.Pretrainer(ft.backbone, pl.objectives.CausalLM())
    pre.compile(learning_rate=1e-2)
    data = rows(shuffle=False)
    ours = ft.evaluate(data, verbose=0, return_dict=True)
    theirs = pre.evaluate(data, verbose=0, return_dict=True)
    assert set(ours) == {"loss", "accuracy", "perplexity"}
    for name in ours:
        assert ours[name] == pytest.approx(theirs[name], rel=1e-5), name


@pytest.mark.slow
def test_it_learns_to_write_its_targets_and_the_generator_takes_the_fine_tuner():
    ft = fine_tuner()
    losses = ft.fit(rows(), epochs=12, verbose=0).history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    written = pl.generation.Generator(ft, tokenizer()).generate(["one :", "two :"],
                                                                max_new_tokens=8)
    assert written == ["a small dog", "the large cat"]


@pytest.mark.slow
def test_with_lora_only_the_low_rank_updates_move_and_generation_sees_them():
    ft = fine_tuner(adapters=pl.freezing.LoRA(4))
    before = {v.path: v.numpy() for v in ft.weights}
    likelihood = pl.generation.Generator(ft, tokenizer()).log_likelihood(
        PROMPTS[:2], TARGETS[:2])["log_likelihood"]
    losses = ft.fit(rows(), epochs=10, verbose=0).history["loss"]
    assert losses[-1] < losses[0]
    changed = {v.path for v in ft.weights if not np.array_equal(before[v.path], v.numpy())}
    assert changed and all("lora" in path for path in changed)
    # The generator decodes with the adapted layers: its logits are the fine-tuned
    # model's, and the targets became likelier.
    generator = pl.generation.Generator(ft, tokenizer())
    ids = np.asarray([[tokenizer().cls_id, 7, 9, 11, 13, 15]], "int32")
    np.testing.assert_allclose(
        np.asarray(generator.decoder.logits(ids)),
        ft.predict_on_batch({"token_ids": ids, "padding_mask": np.ones_like(ids)}), atol=1e-5)
    after = generator.log_likelihood(PROMPTS[:2], TARGETS[:2])["log_likelihood"]
    assert (after > likelihood + 0.5).all(), (likelihood, after)


def test_layerwise_decay_trains_and_a_policy_whose_stage_trains_nothing_is_refused():
    ft = fine_tuner(policy=pl.freezing.LayerwiseLRDecay(0.8))
    assert np.isfinite(ft.fit(rows(), epochs=1, verbose=0).history["loss"]).all()
    for policy in (pl.freezing.FreezeThenUnfreeze(1), pl.freezing.FeatureExtraction(),
                   pl.freezing.GradualUnfreeze(1)):
        with pytest.raises(ValueError, match="trains nothing in stage 0.*CausalLMHead owns"):
            pl.FineTuner(decoder(), pl.heads.CausalLMHead(), policy=policy)


@pytest.mark.slow
def test_it_saves_and_loads_with_the_head_linked_to_the_loaded_embedding(tmp_path):
    ft = fine_tuner(adapters=pl.freezing.LoRA(4))
    ft.fit(rows(), epochs=1, verbose=0)
    inputs = next(iter(ft._evaluation_view(rows(shuffle=False))))[0]
    ft.save(tmp_path / "writer.keras")
    loaded = keras.saving.load_model(tmp_path / "writer.keras")
    assert loaded.head.token_embedding is loaded.backbone.token_embedding
    np.testing.assert_allclose(loaded.predict_on_batch(inputs), ft.predict_on_batch(inputs),
                               atol=1e-5)
    ids = pl.generation.Generator(ft, tokenizer()).generate_ids(PROMPTS[:2], 6)[0]
    assert pl.generation.Generator(loaded, tokenizer()).generate_ids(PROMPTS[:2], 6)[0] == ids
    # Loaded, it goes on training the same weights: the embedding is not a copy.
    loaded.compile(learning_rate=1e-2)
    loaded.fit(rows(), epochs=1, verbose=0)
    np.testing.assert_array_equal(loaded.backbone.token_embedding.embeddings.numpy(),
                                  ft.backbone.token_embedding.embeddings.numpy())  # frozen


@pytest.mark.slow
def test_a_keras_hub_decoder_fine_tunes_with_lora_and_generates():
    gpt2 = keras_hub.models.GPT2Backbone(vocabulary_size=tokenizer().vocab_size, num_layers=1,
                                         num_heads=2, hidden_dim=16, intermediate_dim=32,
                                         max_sequence_length=24)
    ft = fine_tuner(gpt2, adapters=pl.freezing.LoRA(4))
    losses = ft.fit(rows(), epochs=3, verbose=0).history["loss"]
    assert losses[-1] < losses[0]
    written = pl.generation.Generator(ft, tokenizer()).generate(["one :"], max_new_tokens=4)
    assert isinstance(written[0], str)


@pytest.mark.parametrize("build, fragment", [
    (lambda: pl.FineTuner(pl.backbones.TextEncoder(50, num_layers=1, hidden_dim=16),
                          pl.heads.CausalLMHead()), "CausalLMHead needs causal self-attention"),
    (lambda: pl.FineTuner(pl.backbones.ConvNet(widths=(4,)), pl.heads.CausalLMHead()),
     "CausalLMHead needs a text backbone"),
    (lambda: pl.heads.CausalLMHead()(np.zeros((1, 4, 8), "float32")),
     "use it as the head of a pl.FineTuner"),
])
def test_a_backbone_it_cannot_write_with_is_refused(build, fragment):
    with pytest.raises(ValueError, match=fragment):
        build()


@pytest.mark.slow
def test_bad_data_and_calls_name_the_argument():
    ft = fine_tuner()
    labeled = pl.data.text_dataset(["a b", "c d"], tokenizer(), labels=[0, 1], batch_size=2,
                                   sequence_length=16)
    # Classification rows carry tokens too: the labels are ignored, the tokens learned.
    assert np.isfinite(ft.fit(labeled, epochs=1, verbose=0).history["loss"]).all()
    with pytest.raises(ValueError, match="`x` must yield rows of tokens for CausalLMHead"):
        ft.fit(np.zeros((4, 16), "int32"), np.zeros((4,)), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="`validation_data` must yield rows of tokens"):
        ft.fit(rows(), validation_data=(np.zeros((4, 16), "int32"), np.zeros((4,))),
               epochs=1, verbose=0)
    with pytest.raises(ValueError, match="`unlabeled` is for classification heads"):
        ft.fit(rows(), unlabeled=["a b"], epochs=1, verbose=0)
    adapted = fine_tuner(adapters=pl.freezing.Adapters(4))
    with pytest.raises(ValueError, match="adds layers the decoder cannot run"):
        pl.generation.Generator(adapted, tokenizer())


class Crash(keras.callbacks.Callback):
    """Raises after `step` batches: a run that dies mid-epoch."""

    def __init__(self, step):
        super().__init__()
        self.step, self.seen = step, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.step:
            raise RuntimeError("crash")


@pytest.mark.slow
def test_a_run_that_dies_mid_epoch_resumes_from_its_checkpoint_to_the_same_weights(tmp_path):
    reference = fine_tuner(adapters=pl.freezing.LoRA(4))
    reference.fit(rows(), epochs=2, verbose=0)
    crashed = fine_tuner(adapters=pl.freezing.LoRA(4))
    with pytest.raises(RuntimeError, match="crash"):  # 4 batches per epoch: dies in the 2nd
        crashed.fit(rows(), epochs=2, verbose=0,
                    callbacks=[pl.training.Checkpoint(tmp_path, every_steps=2), Crash(7)])
    resumed = fine_tuner(adapters=pl.freezing.LoRA(4))
    history = resumed.fit(rows(), epochs=2, verbose=0,
                          callbacks=[pl.training.Checkpoint(tmp_path, every_steps=2)])
    assert history.epoch[-1] == 1 and int(resumed.optimizer.iterations) == 8
    for a, b in zip(reference.weights, resumed.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, err_msg=a.path)
