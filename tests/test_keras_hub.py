"""KerasHub backbones (built from config, offline) under the Pretrainer and FineTuner."""

import keras
import keras_hub
import numpy as np
import pytest

import pretrainlib as pl
from conftest import weights_of


def bert(tokenizer, **kwargs):
    config = dict(vocabulary_size=tokenizer.vocab_size, num_layers=2, num_heads=2,
                  hidden_dim=32, intermediate_dim=64, max_sequence_length=32, dropout=0.0)
    config.update(kwargs)
    keras.utils.set_random_seed(0)
    return keras_hub.models.BertBackbone(**config)


def test_layer_groups_follow_the_transformer_blocks(tokenizer):
    groups = pl.backbones.layer_groups(bert(tokenizer, num_layers=3))
    named = {name: [layer.name for layer in layers] for name, layers in groups.items()}
    assert named == {
        "embeddings": ["token_embedding", "position_embedding", "segment_embedding",
                       "embeddings_layer_norm"],
        "block_0": ["transformer_layer_0"],
        "block_1": ["transformer_layer_1"],
        "block_2": ["transformer_layer_2", "pooled_dense"],  # the pooler joins the top
    }
    roberta = keras_hub.models.RobertaBackbone(
        vocabulary_size=50, num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16,
        max_sequence_length=16)
    assert list(pl.backbones.layer_groups(roberta)) == ["embeddings", "block_0", "block_1"]


def test_masked_lm_pretrains_a_bert_backbone_on_packed_text(tokenizer, glosses):
    backbone = bert(tokenizer)
    pre = pl.Pretrainer(backbone, objective=pl.objectives.MaskedLM(tokenizer=tokenizer))
    pre.compile(learning_rate=2e-3, warmup_ratio=0.05)
    # Packed rows number their documents in `padding_mask`; BERT gets them as 0/1.
    data = pl.data.text_dataset(glosses[:1024], tokenizer, batch_size=32,
                                sequence_length=32, pack=True, seed=0)
    pooler = weights_of([backbone.get_layer("pooled_dense")])
    # MLM reads the token features; BERT's pooler gets no gradient (Keras says so
    # once, as it does for KerasHub's own BertMaskedLM) and is left as it was.
    with pytest.warns(UserWarning, match="pooled_dense"):
        history = pre.fit(data, epochs=3, steps_per_epoch=12, verbose=0)
    losses = history.history["loss"]
    assert losses[0] > losses[1] > losses[2] and losses[2] < losses[0] - 0.25, losses
    assert all(np.array_equal(a, b) for a, b in zip(
        pooler, weights_of([backbone.get_layer("pooled_dense")])))
    assert pre.backbone is backbone


@pytest.mark.slow
def test_finetuner_trains_a_bert_backbone_under_gradual_unfreezing(labeled, tokenizer,
                                                                    tmp_path):
    backbone = bert(tokenizer)
    ft = pl.FineTuner(backbone, pl.heads.Classifier(num_classes=6, dropout=0.0),
                      policy=pl.freezing.GradualUnfreeze(every_epochs=1))
    assert list(ft.layer_groups) == ["embeddings", "block_0", "block_1", "head"]
    ft.compile(learning_rate=3e-3)
    before = weights_of(ft.layer_groups["block_1"])
    embeddings = weights_of(ft.layer_groups["embeddings"])
    data = labeled(n=96, batch_size=16)
    history = ft.fit(data, epochs=3, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0], losses
    # Stage 2 unfroze block_1 (and the pooler); the embeddings never trained.
    after = weights_of(ft.layer_groups["block_1"])
    assert any(not np.allclose(a, b) for a, b in zip(before, after))
    assert all(np.array_equal(a, b)
               for a, b in zip(embeddings, weights_of(ft.layer_groups["embeddings"])))
    # segment_ids are supplied inside the model: the dataset has none, and a saved
    # model predicts the same after loading.
    inputs = next(iter(labeled(n=16, shuffle=False)))[0]
    assert sorted(inputs) == ["padding_mask", "token_ids"]
    ft.save(tmp_path / "bert.keras")
    loaded = keras.saving.load_model(tmp_path / "bert.keras")
    np.testing.assert_allclose(loaded.predict(inputs, verbose=0),
                               ft.predict(inputs, verbose=0), atol=1e-5)
    assert isinstance(loaded.backbone, keras_hub.models.BertBackbone)


def test_a_frozen_bert_backbone_is_run_once_and_its_features_cached(labeled, tokenizer):
    ft = pl.FineTuner(bert(tokenizer), pl.heads.Classifier(num_classes=6),
                      policy=pl.freezing.FeatureExtraction())
    ft.compile(learning_rate=1e-2)
    history = ft.fit(labeled(n=64), epochs=2, verbose=0)
    assert ft.fit_on_cached_features
    assert np.isfinite(history.history["loss"]).all()


def test_masked_lm_refuses_a_bert_whose_vocabulary_differs(tokenizer):
    with pytest.raises(ValueError, match="vocab"):
        pl.Pretrainer(bert(tokenizer, vocabulary_size=tokenizer.vocab_size + 1),
                      objective=pl.objectives.MaskedLM(tokenizer=tokenizer))


@pytest.mark.slow
def test_a_keras_hub_preset_fine_tunes_with_its_own_vocabulary(wordnet, tokenizer, tmp_path):
    preset = str(tmp_path / "preset")
    vocabulary = tokenizer.get_vocabulary()
    bert(tokenizer).save_to_preset(preset)
    keras_hub.models.BertTokenizer(vocabulary=vocabulary).save_to_preset(preset)
    tok = pl.text.WordPieceTokenizer.from_preset(preset)
    texts = wordnet.train.texts[:8]
    as_lists = lambda ids: ids if isinstance(ids, list) else ids.to_list()  # noqa: E731
    hub_ids = as_lists(keras_hub.models.BertTokenizer.from_preset(preset)(texts))
    assert as_lists(tok.token_ids(texts)) == hub_ids  # the preset's own tokenization
    part = wordnet.train.sample(48, seed=0)
    ft = pl.FineTuner(pl.hub.load_backbone(preset), pl.heads.Classifier(6),
                      policy=pl.freezing.FreezeThenUnfreeze(1))
    ft.compile(learning_rate=3e-3)
    history = ft.fit(pl.data.text_dataset(part.texts, tok, labels=part.labels,
                                          sequence_length=32), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    with pytest.raises(ValueError, match="config.json"):
        pl.text.WordPieceTokenizer.from_preset(str(tmp_path))
    gpt2 = str(tmp_path / "gpt2")  # a preset whose tokenizer is byte-pair, not WordPiece
    keras_hub.models.GPT2Backbone(vocabulary_size=5, num_layers=1, num_heads=1, hidden_dim=4,
                                  intermediate_dim=8, max_sequence_length=8).save_to_preset(gpt2)
    keras_hub.models.GPT2Tokenizer(vocabulary={"<|endoftext|>": 0, "a": 1, "Ġ": 2, "Ġa": 3},
                                   merges=["Ġ a"]).save_to_preset(gpt2)
    with pytest.raises(ValueError, match="WordPieceTokenizer"):
        pl.text.WordPieceTokenizer.from_preset(gpt2)


@pytest.mark.slow
def test_bert_fine_tunes_on_sentence_pairs_with_segment_ids(wordnet, tokenizer, tmp_path):
    # A real pair task: do two WordNet glosses name things of the same supersense?
    rng = np.random.default_rng(0)
    part = wordnet.train.sample(192, seed=0)
    other = rng.permutation(len(part))
    same = (part.labels == part.labels[other]).astype("int32")
    firsts, seconds = part.texts, [part.texts[i] for i in other]
    data = pl.data.text_dataset(firsts, tokenizer, labels=same, pairs=seconds,
                                sequence_length=32, shuffle=False)
    inputs = next(iter(data))[0]
    assert sorted(inputs) == ["padding_mask", "segment_ids", "token_ids"]
    row = inputs["token_ids"][0].numpy()
    seps = np.flatnonzero(row == tokenizer.sep_id)
    assert row[0] == tokenizer.cls_id and len(seps) == 2
    assert (inputs["segment_ids"][0].numpy()[seps[0] + 1:seps[1] + 1] == 1).all()
    ft = pl.FineTuner(bert(tokenizer), pl.heads.Classifier(2),
                      policy=pl.freezing.FullFineTune(), pairs=True)
    ft.compile(learning_rate=1e-3)
    history = ft.fit(data, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    ft.save(tmp_path / "pairs.keras")
    loaded = keras.saving.load_model(tmp_path / "pairs.keras")
    assert loaded.pairs and sorted(loaded.input) == sorted(inputs)
    np.testing.assert_allclose(loaded.predict(inputs, verbose=0),
                               ft.predict(inputs, verbose=0), atol=1e-5)
    # Pair data into a single-text model, and pairs=True on a backbone without
    # segment ids, are named errors.
    single = pl.FineTuner(bert(tokenizer), pl.heads.Classifier(2))
    single.compile()
    with pytest.raises(ValueError, match="pairs=True"):
        single.fit(data, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="segment_ids"):
        pl.FineTuner(pl.backbones.TextEncoder(tokenizer.vocab_size, num_layers=1,
                                              hidden_dim=16), pl.heads.Classifier(2),
                     pairs=True)
    with pytest.raises(ValueError, match="pairs"):
        pl.data.text_dataset(firsts, tokenizer, pairs=seconds[:3])
    with pytest.raises(ValueError, match="Pass pairs=... to pl.data.text_dataset"):
        ft.fit(pl.data.text_dataset(firsts, tokenizer, labels=same, sequence_length=32),
               epochs=1, verbose=0)  # single texts into the pair model


def test_an_objective_needing_token_features_names_what_the_backbone_returns(tokenizer):
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    padding_mask = keras.Input((None,), dtype="int32", name="padding_mask")
    embedding = keras.layers.Embedding(tokenizer.vocab_size, 8, name="token_embedding")
    pooled = keras.layers.GlobalAveragePooling1D()(embedding(token_ids))
    backbone = keras.Model({"token_ids": token_ids, "padding_mask": padding_mask},
                           {"pooled_output": pooled})
    backbone.token_embedding = embedding
    with pytest.raises(ValueError, match="'sequence_output'.*Received: \\['pooled_output'\\]"):
        pl.Pretrainer(backbone, pl.objectives.MaskedLM(tokenizer=tokenizer))
