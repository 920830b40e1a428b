"""The Generator: cached decoding equals uncached decoding token for token, sampling
replays with its seed, samplers keep to their sets, a KerasHub decoder generates after
loading through pl.hub, and bad arguments name themselves."""

import functools

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

import pretrainlib as pl
from pretrainlib.generation.samplers import sampler

PROMPTS = ["a small", "the act of", "", "someone who works in a large"]


@functools.lru_cache(maxsize=None)
def tokenizer():
    texts = pl.datasets.wordnet_supersenses().train.texts[:300]
    return pl.text.WordPieceTokenizer.train(texts, vocab_size=200)


@functools.lru_cache(maxsize=None)
def decoder(normalize_first=True):
    keras.utils.set_random_seed(0)
    return pl.backbones.TextEncoder(tokenizer().vocab_size, num_layers=2, hidden_dim=16,
                                    num_heads=2, max_sequence_length=64, causal=True,
                                    normalize_first=normalize_first)


@pytest.mark.parametrize("normalize_first", [True, False])
def test_cached_generation_equals_uncached_greedy_token_for_token(normalize_first):
    generator = pl.generation.Generator(decoder(normalize_first), tokenizer())
    cached, prompts = generator.generate_ids(PROMPTS, max_new_tokens=24, stop_token_ids=[])
    uncached, _ = generator.generate_ids(PROMPTS, max_new_tokens=24, stop_token_ids=[],
                                         use_cache=False)
    assert cached == uncached
    assert [len(row) for row in cached] == [24] * 4  # no stop token: the full budget
    assert prompts[2] == [tokenizer().cls_id]  # an empty prompt starts from [CLS]


def test_cached_step_logits_equal_the_full_forward_pass():
    from pretrainlib.generation.decoders import decoder_for

    steps = decoder_for(decoder())
    ids = np.random.default_rng(0).integers(5, tokenizer().vocab_size, (3, 12)).astype("int32")
    full = np.asarray(steps.logits(ids))
    cache = steps.build_cache(ids)
    for index in (0, 5, 11):
        logits, cache = steps.call_with_cache(ids[:, index:index + 1], cache, index)
        np.testing.assert_allclose(np.asarray(logits)[:, 0], full[:, index], atol=1e-5)


@pytest.mark.parametrize("name, options", [("top_k", {"k": 5}), ("top_p", {"p": 0.8}),
                                           ("random", {"temperature": 0.7})])
@pytest.mark.slow
def test_sampling_replays_with_its_seed_and_differs_across_seeds(name, options):
    generator = pl.generation.Generator(decoder(), tokenizer())
    run = functools.partial(generator.generate_ids, PROMPTS, max_new_tokens=12, sampler=name,
                            stop_token_ids=[], **options)
    assert run(seed=1)[0] == run(seed=1)[0]
    assert run(seed=1)[0] != run(seed=2)[0]
    cached, uncached = run(seed=4)[0], run(seed=4, use_cache=False)[0]
    assert cached == uncached  # the same draws with and without the cache


def test_samplers_keep_to_their_sets():
    logits = tf.constant(np.log([[0.5, 0.3, 0.15, 0.05]] * 2000), "float32")
    draws = lambda fn: np.asarray(fn(logits, tf.constant([0, 1])))  # noqa: E731
    assert set(draws(sampler("greedy"))) == {0}
    assert set(draws(sampler("top_k", k=2))) == {0, 1}
    assert set(draws(sampler("top_p", p=0.75))) == {0, 1}  # 0.5 + 0.3 >= 0.75
    assert set(draws(sampler("top_p", p=0.5))) == {0}
    counts = np.bincount(draws(sampler("random")), minlength=4) / 2000
    np.testing.assert_allclose(counts, [0.5, 0.3, 0.15, 0.05], atol=0.04)
    cold = np.bincount(draws(sampler("random", temperature=0.25)), minlength=4) / 2000
    assert cold[0] > 0.85  # a low temperature sharpens


def test_a_stop_token_ends_a_row_and_the_rest_keep_going():
    generator = pl.generation.Generator(decoder(), tokenizer())
    free, _ = generator.generate_ids(PROMPTS, max_new_tokens=10, stop_token_ids=[])
    stop = free[0][3]  # the 4th token of the first row becomes a stop token
    stopped, _ = generator.generate_ids(PROMPTS, max_new_tokens=10, stop_token_ids=[stop])
    assert stopped[0] == free[0][:free[0].index(stop)]
    for before, after in zip(free[1:], stopped[1:]):
        assert after == (before[:before.index(stop)] if stop in before else before)


@pytest.mark.slow
def test_batches_of_prompts_decode_as_one_batch_does():
    generator = pl.generation.Generator(decoder(), tokenizer())
    whole, _ = generator.generate_ids(PROMPTS, max_new_tokens=8, stop_token_ids=[])
    batched, prompts = generator.generate_ids(PROMPTS, max_new_tokens=8, stop_token_ids=[],
                                              batch_size=3)
    assert batched == whole and len(prompts) == 4  # greedy: a row's batch changes nothing
    sample = functools.partial(generator.generate_ids, PROMPTS, max_new_tokens=8,
                               sampler="random", stop_token_ids=[], batch_size=1)
    assert sample(seed=3)[0] == sample(seed=3)[0]
    with pytest.raises(ValueError, match="batch_size"):
        generator.generate(PROMPTS, batch_size=0)


def test_texts_continue_the_prompts():
    generator = pl.generation.Generator(decoder(), tokenizer())
    texts = generator.generate(PROMPTS, max_new_tokens=6, sampler="top_k", k=3, seed=0)
    assert len(texts) == 4 and all(isinstance(t, str) for t in texts)


@pytest.mark.slow
def test_a_keras_hub_decoder_generates_after_loading_through_the_hub(tmp_path):
    keras.utils.set_random_seed(0)
    gpt2 = keras_hub.models.GPT2Backbone(vocabulary_size=tokenizer().vocab_size, num_layers=1,
                                         num_heads=2, hidden_dim=16, intermediate_dim=32,
                                         max_sequence_length=64)
    gpt2.save(str(tmp_path / "gpt2.keras"))
    loaded = pl.hub.load_backbone(str(tmp_path / "gpt2.keras"))
    generator = pl.generation.Generator(loaded, tokenizer())
    cached, _ = generator.generate_ids(PROMPTS, max_new_tokens=10, stop_token_ids=[])
    uncached, _ = generator.generate_ids(PROMPTS, max_new_tokens=10, stop_token_ids=[],
                                         use_cache=False)
    assert cached == uncached and all(len(row) == 10 for row in cached)
    beams = functools.partial(generator.generate_ids, PROMPTS, max_new_tokens=6,
                              sampler="beam", num_beams=3, stop_token_ids=[])
    assert beams()[0] == beams(use_cache=False)[0]  # KerasHub's cache gathered by beam


# === Beam search ===
class IdTokenizer:
    """Texts of token ids: `"3 1"` is `[3, 1]` (no start token)."""

    def token_ids(self, texts):
        return tf.ragged.constant([[int(t) for t in text.split()] for text in texts], "int32")

    def detokenize(self, ids):
        return " ".join(str(int(i)) for i in ids)


def sequence_log_prob(model, prompt: list[int], new: list[int]) -> float:
    from pretrainlib.generation.decoders import decoder_for

    ids = np.asarray([prompt + new], "int32")
    log_probs = tf.nn.log_softmax(decoder_for(model).logits(ids)[0]).numpy()
    return float(sum(log_probs[len(prompt) - 1 + i, token] for i, token in enumerate(new)))


@functools.lru_cache(maxsize=None)
def tiny_vocabulary_model():
    keras.utils.set_random_seed(3)
    return pl.backbones.TextEncoder(5, num_layers=1, hidden_dim=8, num_heads=2,
                                    max_sequence_length=8, causal=True)


@pytest.mark.slow
def test_beam_search_finds_the_most_likely_continuation():
    import itertools

    model = tiny_vocabulary_model()
    generator = pl.generation.Generator(model, IdTokenizer())
    prompts = ["2 1", "4"]
    # 25 beams keep every two-token prefix of a 5-token vocabulary: exact at 3 tokens.
    found, _ = generator.generate_ids(prompts, max_new_tokens=3, sampler="beam", num_beams=25,
                                      stop_token_ids=[])
    for prompt, new in zip(prompts, found):
        prompt = [int(t) for t in prompt.split()]
        scores = {c: sequence_log_prob(model, prompt, list(c))
                  for c in itertools.product(range(5), repeat=3)}
        assert tuple(new) == max(scores, key=scores.get)
    greedy, _ = generator.generate_ids(prompts, max_new_tokens=3, stop_token_ids=[])
    one_beam, _ = generator.generate_ids(prompts, max_new_tokens=3, sampler="beam",
                                         num_beams=1, stop_token_ids=[])
    assert one_beam == greedy


@pytest.mark.slow
def test_beam_search_with_the_cache_equals_without_and_prompts_do_not_mix():
    generator = pl.generation.Generator(decoder(), tokenizer())
    beams = functools.partial(generator.generate_ids, max_new_tokens=8, sampler="beam",
                              num_beams=3)
    cached, _ = beams(PROMPTS)
    assert cached == beams(PROMPTS, use_cache=False)[0]
    assert [beams([prompt])[0][0] for prompt in PROMPTS] == cached


@pytest.mark.parametrize("call, fragment", [
    (lambda g: g.generate([], max_new_tokens=4), "`prompts` is empty"),
    (lambda g: g.generate("a dog"), "`prompts` must be a list"),
    (lambda g: g.generate(PROMPTS, max_new_tokens=0), "max_new_tokens"),
    (lambda g: g.generate(PROMPTS, max_new_tokens=60), "at most 64"),
    (lambda g: g.generate(PROMPTS, sampler="top_k", k=0), "`k`"),
    (lambda g: g.generate(PROMPTS, sampler="top_p", p=0.0), "`p`"),
    (lambda g: g.generate(PROMPTS, sampler="top_p", p=1.5), "`p`"),
    (lambda g: g.generate(PROMPTS, sampler="random", temperature=0.0), "temperature"),
    (lambda g: g.generate(PROMPTS, sampler="beams"), "sampler"),
    (lambda g: g.generate(PROMPTS, sampler="beam", num_beams=0), "num_beams"),
])
def test_bad_arguments_name_themselves(call, fragment):
    with pytest.raises((ValueError, TypeError), match=fragment):
        call(pl.generation.Generator(decoder(), tokenizer()))


def test_a_backbone_that_is_not_causal_is_refused():
    encoder = pl.backbones.TextEncoder(tokenizer().vocab_size, num_layers=1, hidden_dim=16)
    with pytest.raises(ValueError, match="Generation needs a causal backbone"):
        pl.generation.Generator(encoder, tokenizer())


# === Fine-tuning for generation: (prompt, target) pairs ===
def test_prompt_rows_mark_the_target_and_the_loss_ignores_prompt_tokens():
    tok = tokenizer()
    ds = pl.data.prompt_dataset(["a small dog :", "the cat :"], ["a pet", "an animal that"],
                                tok, batch_size=2, sequence_length=24, shuffle=False)
    batch = next(iter(ds))
    prompt_length = len(tok.token_ids(["a small dog :"]).to_list()[0])
    target_length = len(tok.token_ids(["a pet"]).to_list()[0])
    mask = batch["target_mask"].numpy()[0]
    assert mask[:1 + prompt_length].sum() == 0  # [CLS] and the prompt
    assert mask.sum() == target_length + 1  # the target and its [SEP]
    inputs, labels, weights = pl.objectives.CausalLM().transform(batch)
    np.testing.assert_array_equal(weights.numpy(), batch["target_mask"].numpy()[:, 1:])
    loss = pl.objectives.CausalLM().loss()
    logits = np.random.default_rng(0).normal(size=(*labels.shape, tok.vocab_size))
    changed = logits.copy()
    changed[weights.numpy() == 0] = 50.0  # any prediction of a prompt token
    assert float(loss(labels, logits, weights)) == pytest.approx(
        float(loss(labels, changed, weights)), rel=1e-6)
    changed[weights.numpy() == 1] += np.random.default_rng(1).normal(
        size=changed[weights.numpy() == 1].shape)
    assert float(loss(labels, logits, weights)) != pytest.approx(
        float(loss(labels, changed, weights)), rel=1e-3)


def pair_run(lora: bool, epochs: int):
    tok = tokenizer()
    keras.utils.set_random_seed(0)
    model = pl.backbones.TextEncoder(tok.vocab_size, num_layers=1, hidden_dim=32, num_heads=2,
                                     max_sequence_length=24, causal=True)
    if lora:
        model.enable_lora(4)
    before = {v.path: v.numpy() for v in model.weights}
    pre = pl.Pretrainer(model, pl.objectives.CausalLM(), seed=0)
    pre.compile(learning_rate=1e-2)
    prompts, targets = ["one :", "two :"] * 16, ["a small dog", "the large cat"] * 16
    data = pl.data.prompt_dataset(prompts, targets, tok, batch_size=8, sequence_length=16,
                                  seed=0)
    return model, before, pre.fit(data, epochs=epochs, verbose=0).history["loss"]


def test_a_causal_model_learns_to_write_its_targets():
    model, _, losses = pair_run(lora=False, epochs=12)
    assert losses[-1] < 0.5 * losses[0]
    written = pl.generation.Generator(model, tokenizer()).generate(["one :", "two :"],
                                                                   max_new_tokens=8)
    assert written == ["a small dog", "the large cat"]


def test_with_lora_only_the_adapters_learn_from_the_pairs():
    model, before, losses = pair_run(lora=True, epochs=3)
    assert losses[-1] < losses[0]
    changed = {v.path for v in model.weights if not np.array_equal(before[v.path], v.numpy())}
    # The low-rank matrices (and the adapted layers' biases, which Keras's LoRA leaves
    # trainable) move; everything else keeps its pretrained value.
    assert any("lora" in path for path in changed)
    assert all("/query/" in path or "/value/" in path for path in changed)


@pytest.mark.parametrize("call, fragment", [
    (lambda tok: pl.data.prompt_dataset(["a"], ["b", "c"], tok), "one target per prompt"),
    (lambda tok: pl.data.prompt_dataset(["a b c d e f"], ["g h i j"], tok, sequence_length=6),
     "longer than `sequence_length`=6"),
    (lambda tok: pl.data.prompt_dataset([], [], tok), "`prompts` is empty"),
])
def test_bad_prompt_data_names_the_argument(call, fragment):
    with pytest.raises(ValueError, match=fragment):
        call(tokenizer())


# === Scoring what a model writes ===
PAIRS = (["one :", "two :", "three :"], ["a small dog", "the large cat", "a dog"])


@functools.lru_cache(maxsize=None)
def trained_pair_model():
    return pair_run(lora=False, epochs=12)[0]


@pytest.mark.slow
def test_log_likelihood_perplexity_equals_the_evaluator_on_prompt_rows():
    model, tok = trained_pair_model(), tokenizer()
    scores = pl.generation.Generator(model, tok).log_likelihood(*PAIRS, batch_size=2)
    objective = pl.objectives.CausalLM()
    rows = pl.data.prompt_dataset(*PAIRS, tok, batch_size=3, sequence_length=16,
                                  shuffle=False).map(objective.transform)
    expected = pl.Evaluator(["perplexity", "token_accuracy"]).evaluate(
        pl.Pretrainer(model, objective, seed=0), rows).metrics
    target_tokens = [len(t) + 1 for t in tok.token_ids(PAIRS[1]).to_list()]  # and [SEP]
    assert scores["tokens"].tolist() == target_tokens
    perplexity = np.exp(-scores["log_likelihood"].sum() / scores["tokens"].sum())
    assert perplexity == pytest.approx(expected["perplexity"], rel=1e-5)
    assert scores["correct"].sum() / scores["tokens"].sum() == pytest.approx(
        expected["token_accuracy"], rel=1e-6)


def test_evaluate_generation_scores_the_texts_and_the_references_likelihood():
    model, tok = trained_pair_model(), tokenizer()
    generator = pl.generation.Generator(model, tok)
    evaluator = pl.Evaluator(["bleu", "rouge_l", "perplexity"], bootstrap=50)
    report = evaluator.evaluate_generation(generator, *PAIRS, max_new_tokens=6, batch_size=2)
    assert report.predictions == generator.generate(PAIRS[0], max_new_tokens=6)
    texts = pl.Evaluator(["bleu", "rouge_l"]).evaluate_texts(PAIRS[1], report.predictions)
    assert report.metrics["bleu"] == pytest.approx(texts.metrics["bleu"], abs=1e-9)
    scores = generator.log_likelihood(*PAIRS)
    assert report.metrics["perplexity"] == pytest.approx(
        np.exp(-scores["log_likelihood"].sum() / scores["tokens"].sum()), rel=1e-9)
    low, high = report.intervals["perplexity"]
    assert low <= report.metrics["perplexity"] <= high


def test_bad_scoring_calls_name_the_argument():
    generator = pl.generation.Generator(decoder(), tokenizer())
    with pytest.raises(ValueError, match="need the model that wrote the texts"):
        pl.Evaluator(["bleu", "perplexity"]).evaluate_texts(["a"], ["a"])
    with pytest.raises(ValueError, match="`evaluate_generation` scores generated texts"):
        pl.Evaluator(["accuracy"]).evaluate_generation(generator, ["a"], ["b"])
    with pytest.raises(ValueError, match="one target per prompt"):
        generator.log_likelihood(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="the backbone takes at most 64"):
        pl.Evaluator(["bleu", "perplexity"]).evaluate_generation(
            generator, ["a"], [" ".join(["dog"] * 80)])
    with pytest.raises(ValueError, match="`references` has 1 entries for 2"):
        pl.Evaluator(["bleu"]).evaluate_generation(generator, ["a", "b"], ["c"])


@pytest.mark.slow
def test_the_repetition_penalty_is_ctrl_s_on_every_written_token():
    from pretrainlib.generation.decoders import decoder_for

    model, tok = decoder(), tokenizer()
    generator = pl.generation.Generator(model, tok)
    prompt = generator.encode(["a small"])[0]
    row = list(prompt)
    for _ in range(6):  # the reference: penalize what the row holds, take the argmax
        logits = np.asarray(decoder_for(model).logits(np.asarray([row], "int32")))[0, -1]
        seen = np.isin(np.arange(len(logits)), row)
        logits = np.where(seen, np.where(logits > 0, logits / 3.0, logits * 3.0), logits)
        row.append(int(np.argmax(logits)))
    penalized, _ = generator.generate_ids(["a small"], max_new_tokens=6, stop_token_ids=[],
                                          repetition_penalty=3.0)
    assert penalized[0] == row[len(prompt):]
    plain, _ = generator.generate_ids(["a small"], max_new_tokens=6, stop_token_ids=[])
    assert plain != penalized
    for kind in ("greedy", "beam"):
        run = functools.partial(generator.generate_ids, PROMPTS, max_new_tokens=8,
                                sampler=kind, num_beams=2, repetition_penalty=1.5)
        assert run()[0] == run(use_cache=False)[0]
    with pytest.raises(ValueError, match="repetition_penalty"):
        generator.generate(PROMPTS, repetition_penalty=0.0)
