"""Cloze prompts (`pl.text.Prompt`) and the head that fills them
(`pl.heads.ClozeClassifier`): the rows a template makes, logits equal to the masked-LM
head's, zero-shot classification on a toy model that learned the pattern, saving and
the bad-input errors. Mirrored, reload and quantized export: the head's case in
tests/harness.py."""

import keras
import numpy as np
import pytest

import pretrainlib as pl

ANIMALS, TOOLS = ["dog", "cat", "horse", "cow"], ["hammer", "saw", "drill", "wrench"]
VERBS = ["runs", "sleeps", "works", "breaks", "is", "was"]


@pytest.fixture(scope="module")
def corpus():
    texts = [f"{kind} : the {thing} {verb}" for kind, things in
             (("animal", ANIMALS), ("tool", TOOLS)) for thing in things for verb in VERBS]
    # Room for every word whole: WordPiece training breaks ties differently in
    # another process, which would change how words split.
    tok = pl.text.WordPieceTokenizer.train(texts, vocab_size=90)
    return texts, tok


def test_rows_put_the_mask_at_one_place_and_cut_long_texts_at_their_end(corpus):
    _, tok = corpus
    prompt = pl.text.Prompt(tok, "the [MASK] : {text} !", ["animal", "tool"])
    rows = prompt.encode(["the dog runs", "the cat sleeps " * 10], sequence_length=14)
    ids = rows["token_ids"].numpy()
    assert prompt.mask_position == 2 and (ids[:, 2] == tok.mask_id).all()
    assert (ids[:, 0] == tok.cls_id).all() and ids[1, -1] == tok.sep_id
    expected = [tok.cls_id, *tok.token_ids(["the"])[0].numpy(), tok.mask_id,
                *tok.token_ids([": the dog runs !"])[0].numpy(), tok.sep_id]
    assert ids[0, :len(expected)].tolist() == [int(i) for i in expected]
    assert rows["padding_mask"].numpy()[0].sum() == len(expected)
    assert ids[1, -2] == tok.token_ids(["!"])[0].numpy()[0]  # the text was cut, not "!"
    assert prompt.word_ids == [tok.token_to_id("animal"), tok.token_to_id("tool")]


def masked_lm(tok, seed=0):
    keras.utils.set_random_seed(seed)
    encoder = pl.backbones.TextEncoder(tok.vocab_size, num_layers=1, hidden_dim=32,
                                       num_heads=2, max_sequence_length=12, dropout=0.0)
    return encoder, pl.Pretrainer(encoder, pl.objectives.MaskedLM(tokenizer=tok, mask_rate=0.3),
                                  seed=seed)


def test_cloze_logits_are_the_masked_lm_logits_of_the_verbalizer_words(corpus):
    _, tok = corpus
    encoder, pre = masked_lm(tok)
    prompt = pl.text.Prompt(tok, "[MASK] : {text}", {"animals": "animal", "tools": "tool"})
    ft = pl.FineTuner(encoder, pl.heads.ClozeClassifier.from_masked_lm(pre, prompt),
                      preprocessor=prompt.preprocessor(12))
    texts = ["the dog runs", "the saw breaks"]
    rows = prompt.encode(texts, 12)
    positions = np.full((2, 1), prompt.mask_position, "int32")
    vocabulary_logits = pre.predict({**rows, "mask_positions": positions}, verbose=0)[:, 0]
    np.testing.assert_allclose(ft.predict(texts, verbose=0),
                               vocabulary_logits[:, prompt.word_ids], atol=1e-5)


@pytest.mark.slow
def test_zero_shot_gives_the_class_whose_word_the_model_learned_to_fill_in(corpus):
    texts, tok = corpus
    encoder, pre = masked_lm(tok)
    pre.compile(learning_rate=3e-3)
    pre.fit(pl.data.text_dataset(texts * 8, tok, batch_size=16, sequence_length=12, seed=0),
            epochs=40, verbose=0)
    prompt = pl.text.Prompt(tok, "[MASK] : {text}", {"animal": "animal", "tool": "tool"})
    ft = pl.FineTuner(encoder, pl.heads.ClozeClassifier.from_masked_lm(pre, prompt),
                      preprocessor=prompt.preprocessor(12), class_names=prompt.class_names)
    probe = [f"the {thing} moves" for thing in ANIMALS + TOOLS]  # a verb never seen
    predicted = ft.predict(probe, verbose=0).argmax(-1)
    assert predicted.tolist() == [0] * 4 + [1] * 4
    report = pl.Evaluator(["accuracy"]).evaluate(
        ft, pl.data.text_dataset(probe, prompt, [0] * 4 + [1] * 4, sequence_length=12))
    assert report.metrics["accuracy"] == 1.0


@pytest.mark.slow
def test_calibration_undoes_a_class_bias_without_labels_and_saves(corpus, tmp_path):
    texts, tok = corpus
    encoder, pre = masked_lm(tok)
    pre.compile(learning_rate=3e-3)
    pre.fit(pl.data.text_dataset(texts * 8, tok, batch_size=16, sequence_length=12, seed=0),
            epochs=40, verbose=0)
    prompt = pl.text.Prompt(tok, "[MASK] : {text}", ["animal", "tool"])
    ft = pl.FineTuner(encoder, pl.heads.ClozeClassifier.from_masked_lm(pre, prompt),
                      preprocessor=prompt.preprocessor(12))
    probe = [f"the {thing} moves" for thing in ANIMALS + TOOLS]
    pool = [f"the {thing} {verb}" for thing in ANIMALS + TOOLS for verb in ("runs", "is")]
    # Bias it past its widest margin for "tool" (how sure it is varies by run): the
    # calibrated result does not depend on how far.
    logits = ft.predict(probe + pool, verbose=0)
    push = float((logits[:, 1] - logits[:, 0]).max()) + 1.0
    ft.head.logits.bias.assign(np.asarray(ft.head.logits.bias) + [push, 0.0])
    assert ft.predict(probe, verbose=0).argmax(-1).tolist() == [0] * 8  # biased
    before = ft.predict(pool, verbose=0)
    shift = ft.head.calibrate(ft, pool)
    after = ft.predict(pool, verbose=0)
    np.testing.assert_allclose(after, before + shift, atol=1e-4)  # only the biases moved
    mean = keras.ops.convert_to_numpy(keras.ops.softmax(after)).mean(0)
    np.testing.assert_allclose(mean, [0.5, 0.5], atol=1e-4)
    assert ft.predict(probe, verbose=0).argmax(-1).tolist() == [0] * 4 + [1] * 4
    # A dataset's labels are ignored; a prior is matched; the shift is saved.
    labeled = pl.data.text_dataset(pool, prompt, [1] * len(pool), sequence_length=12)
    ft.head.calibrate(ft, labeled, prior=[3, 1])
    mean = keras.ops.convert_to_numpy(keras.ops.softmax(ft.predict(pool, verbose=0))).mean(0)
    np.testing.assert_allclose(mean, [0.75, 0.25], atol=1e-4)
    ft.save(tmp_path / "calibrated.keras")
    again = keras.saving.load_model(tmp_path / "calibrated.keras")
    np.testing.assert_allclose(again.predict(pool, verbose=0), ft.predict(pool, verbose=0),
                               atol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    ({"prior": [1, 1, 1]}, "`prior` must hold one positive number per class \\(2\\)"),
    ({"prior": [1, 0]}, "`prior` must hold one positive number"),
    ({"x": []}, "`x` is empty"),
    ({"model": "other"}, "`model` must be the model this head sits in"),
])
def test_bad_calibration_arguments_are_refused(corpus, kwargs, message):
    _, tok = corpus
    encoder, pre = masked_lm(tok)
    prompt = pl.text.Prompt(tok, "[MASK] : {text}", ["animal", "tool"])
    ft = pl.FineTuner(encoder, pl.heads.ClozeClassifier.from_masked_lm(pre, prompt),
                      preprocessor=prompt.preprocessor(12))
    other = pl.FineTuner(pl.backbones.clone(encoder), pl.heads.Classifier(2),
                         preprocessor=prompt.preprocessor(12))
    arguments = {"model": ft, "x": ["the dog runs"], **kwargs}
    if arguments["model"] == "other":
        arguments["model"] = other
    bias = np.asarray(ft.head.logits.bias).copy()
    with pytest.raises(ValueError, match=message):
        ft.head.calibrate(**arguments)
    np.testing.assert_array_equal(np.asarray(ft.head.logits.bias), bias)  # untouched


@pytest.mark.slow
def test_few_shot_fine_tuning_starts_from_the_prompt_and_saves(corpus, tmp_path):
    texts, tok = corpus
    encoder, pre = masked_lm(tok)
    prompt = pl.text.Prompt(tok, "[MASK] : {text}", ["animal", "tool"])
    ft = pl.FineTuner(encoder, pl.heads.ClozeClassifier.from_masked_lm(pre, prompt),
                      preprocessor=prompt.preprocessor(12),
                      policy=pl.freezing.FullFineTune(), adapters=pl.freezing.LoRA(2))
    ft.compile(learning_rate=1e-2)
    shots = [f"the {t} runs" for t in ANIMALS[:2] + TOOLS[:2]]
    history = ft.fit(shots * 4, [0, 0, 1, 1] * 4, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    ft.save(tmp_path / "prompted.keras")
    again = keras.saving.load_model(tmp_path / "prompted.keras")
    assert again.preprocessor.tokenizer.mask_position == prompt.mask_position
    np.testing.assert_allclose(again.predict(shots, verbose=0), ft.predict(shots, verbose=0),
                               atol=1e-5)


@pytest.mark.parametrize("template, message", [
    ("{text}", "`template` must hold `\\[MASK\\]` once"),
    ("[MASK] [MASK] {text}", "`template` must hold"),
    ("{text} it was [MASK]", "must put `\\[MASK\\]` before `{text}`"),
])
def test_bad_templates_are_refused(corpus, template, message):
    with pytest.raises(ValueError, match=message):
        pl.text.Prompt(corpus[1], template, ["animal", "tool"])


@pytest.mark.parametrize("verbalizer, message", [
    (["animal", "screwdrivers"], "word 'screwdrivers' is .* word pieces"),
    (["animal", "animal"], "two classes the same word"),
    (["animal"], "at least two"),
    ("animal", "one word per class"),
])
def test_bad_verbalizers_are_refused(corpus, verbalizer, message):
    with pytest.raises(ValueError, match=message):
        pl.text.Prompt(corpus[1], "[MASK] : {text}", verbalizer)


def test_a_row_too_short_for_the_template_and_a_model_without_masked_lm_are_refused(corpus):
    _, tok = corpus
    prompt = pl.text.Prompt(tok, "the [MASK] : {text}", ["animal", "tool"])
    with pytest.raises(ValueError, match="`sequence_length=4` leaves no room"):
        prompt.encode(["the dog"], 4)
    encoder = pl.backbones.TextEncoder(tok.vocab_size, num_layers=1, hidden_dim=16,
                                       max_sequence_length=12)
    with pytest.raises(ValueError, match="one masked-LM head"):
        pl.heads.ClozeClassifier.from_masked_lm(encoder, prompt)
    head = pl.heads.ClozeClassifier(2, feature="pooled_output")
    with pytest.raises(ValueError, match="reads a sequence"):
        pl.FineTuner(encoder, head)
