"""Parameter-efficient transforms compose with any schedule; merge and unload; the
recipe's helpers (clone, init_token_embeddings) check what they are given."""

import keras
import numpy as np
import pytest

import pretrainlib as pl


def snapshot(model):
    return {v.path: np.array(v) for v in model.weights}


def changed(before, model):
    return {v.path for v in model.weights if not np.array_equal(before[v.path], np.array(v))}


class Moves(keras.callbacks.Callback):
    """Which variable names moved in each epoch."""

    def __init__(self, model):
        super().__init__()
        self.watched, self.epochs = model, []

    def on_epoch_begin(self, epoch, logs=None):
        self.before = snapshot(self.watched)

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(changed(self.before, self.watched))


def moves_per_epoch(tiny_encoder, labeled, policy, adapters, epochs):
    """Fits a FineTuner with `policy` and `adapters`; returns (it, what moved per epoch)."""
    ft = pl.FineTuner(tiny_encoder(), pl.heads.Classifier(6), policy=policy,
                      adapters=adapters)
    ft.compile(learning_rate=1e-2)
    watch = Moves(ft)
    ft.fit(labeled(n=32), epochs=epochs, callbacks=[watch], cache_features=False, verbose=0)
    return ft, watch.epochs


def test_lora_under_freeze_then_unfreeze_trains_the_head_then_the_updates(tiny_encoder,
                                                                          labeled):
    ft, (first, second) = moves_per_epoch(tiny_encoder, labeled,
                                          pl.freezing.FreezeThenUnfreeze(freeze_epochs=1),
                                          pl.freezing.LoRA(rank=2), epochs=2)
    assert first and all(p.startswith(ft.head.name) for p in first)
    backbone = {p.rsplit("/", 1)[-1] for p in second if not p.startswith(ft.head.name)}
    assert backbone == {"lora_kernel_a", "lora_kernel_b"}


def test_adapters_under_gradual_unfreeze_open_block_by_block(tiny_encoder, labeled):
    ft, epochs = moves_per_epoch(tiny_encoder, labeled,
                                 pl.freezing.GradualUnfreeze(every_epochs=1),
                                 pl.freezing.Adapters(bottleneck=4), epochs=3)
    opened = [{p.split("/")[0] for p in moved if "adapter" in p} for moved in epochs]
    assert opened == [set(), {"transformer_layer_1_adapter"},
                      {"transformer_layer_1_adapter", "transformer_layer_0_adapter"}]
    assert not any("adapter" not in p and not p.startswith(ft.head.name)
                   for moved in epochs for p in moved)


@pytest.mark.slow
def test_bitfit_as_a_transform_follows_the_schedule(tiny_encoder, labeled):
    ft, epochs = moves_per_epoch(tiny_encoder, labeled,
                                 pl.freezing.FreezeThenUnfreeze(freeze_epochs=1),
                                 pl.freezing.BitFit(), epochs=2)
    assert all(p.startswith(ft.head.name) for p in epochs[0])
    assert {p.rsplit("/", 1)[-1] for p in epochs[1]
            if not p.startswith(ft.head.name)} == {"bias", "gamma", "beta"}


@pytest.mark.slow
def test_lora_merge_and_unload(tiny_encoder, labeled):
    encoder = tiny_encoder()
    x = next(iter(labeled(shuffle=False)))[0]
    plain = np.array(encoder(x)["pooled_output"])
    ft = pl.FineTuner(encoder, pl.heads.Classifier(6), adapters=pl.freezing.LoRA(rank=2))
    ft.compile(learning_rate=1e-2)
    ft.fit(labeled(n=32), epochs=1, verbose=0)
    tuned = np.array(ft.backbone(x)["pooled_output"])
    assert not np.allclose(tuned, plain, atol=1e-4)
    merged = pl.freezing.LoRA.merge(ft.backbone)
    np.testing.assert_allclose(merged(x)["pooled_output"], tuned, atol=1e-5)
    unloaded = pl.freezing.LoRA.unload(ft.backbone)
    assert not any("lora" in v.path for v in unloaded.weights)
    np.testing.assert_allclose(unloaded(x)["pooled_output"], plain, atol=1e-5)


def test_a_clone_keeps_the_original_untouched(tiny_encoder, labeled):
    encoder = tiny_encoder()
    copy = pl.backbones.clone(encoder)
    before = snapshot(encoder)
    ft = pl.FineTuner(copy, pl.heads.Classifier(6), adapters=pl.freezing.LoRA(rank=2))
    ft.compile(learning_rate=1e-2)
    ft.fit(labeled(n=32), epochs=1, verbose=0)
    assert not changed(before, encoder)
    assert not any("lora" in v.path for v in encoder.weights)
    with pytest.raises(TypeError, match="backbone"):
        pl.backbones.clone("bert")


def test_adapters_unload_gives_back_the_backbone(tiny_encoder):
    encoder = tiny_encoder()
    transform = pl.freezing.Adapters(4)
    ft = pl.FineTuner(encoder, pl.heads.Classifier(6), adapters=transform)
    assert transform.unload(ft.backbone) is encoder
    with pytest.raises(NotImplementedError, match="cannot be merged"):
        transform.merge(ft.backbone)


def test_init_token_embeddings_checks_vocabulary_and_width(tokenizer, glosses):
    encoder = pl.backbones.TextEncoder(tokenizer.vocab_size, num_layers=1, hidden_dim=16,
                                       max_sequence_length=16)
    matrix = pl.text.init_token_embeddings(encoder, glosses[:500], tokenizer)
    np.testing.assert_array_equal(np.array(encoder.token_embedding.embeddings), matrix)
    assert matrix.shape == (tokenizer.vocab_size, 16)
    other = pl.backbones.TextEncoder(50, num_layers=1, hidden_dim=16)
    with pytest.raises(ValueError, match="vocab_size=600.*embeds 50"):
        pl.text.init_token_embeddings(other, glosses[:50], tokenizer)
    with pytest.raises(ValueError, match="`dim`"):
        pl.text.init_token_embeddings(encoder, glosses[:50], tokenizer, dim=8)
    with pytest.raises(ValueError, match="token_embedding"):
        pl.text.init_token_embeddings(pl.backbones.ConvNet(widths=(4,)), glosses[:5],
                                      tokenizer)
