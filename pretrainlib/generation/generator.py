"""Generator: batched, compiled text generation with a key/value cache."""

from __future__ import annotations

import functools

import keras
import numpy as np
import tensorflow as tf

from pretrainlib import validation
from pretrainlib.generation.decoders import decoder_for
from pretrainlib.generation.samplers import sampler as make_sampler


class Generator:
    """Continues prompts with a causal backbone: batched, in one compiled loop, with a
    key/value cache, seeded.

    Works with `pl.backbones.TextEncoder(causal=True)` (e.g. pretrained by
    `pl.objectives.CausalLM`, or fine-tuned for generation) and with KerasHub decoder
    backbones (GPT-2, Llama, ... built directly or loaded with
    `pl.hub.load_backbone`). The prompts of a batch are tokenized (after the start
    token the model was trained with: `[CLS]` for this library's tokenizers),
    right-padded into one `[batch, longest prompt + max_new_tokens]` tensor, and the
    whole batch is decoded in one `tf.while_loop`: a first pass fills every layer's
    key/value cache, then each step feeds one token per row, attends to the cache,
    and chooses the next token (a row whose prompt is longer keeps its own tokens
    until its prompt ends). Generation stops for a row at a stop token (default: the
    tokenizer's end token, `[SEP]`) or after `max_new_tokens`, and for the batch when
    every row has stopped. `use_cache=False` runs the full model at every step
    instead (the reference the cache must equal; slower by a factor that grows with
    the length).

    Args:
        backbone: a causal backbone, or a model holding one as `backbone`: a
            FineTuner fine-tuned with `pl.heads.CausalLMHead` (its LoRA updates
            included), a CausalLM Pretrainer, a KerasHub causal LM.
        tokenizer: this library's `pl.text.WordPieceTokenizer`, or a KerasHub tokenizer.
        jit_compile: compile the loop with XLA.

    Examples:
        >>> import pretrainlib as pl
        >>> texts = ["a small dog barks", "a large cat sleeps", "the dog sees the cat"] * 8
        >>> tok = pl.text.WordPieceTokenizer.train(texts, vocab_size=60)
        >>> decoder = pl.backbones.TextEncoder(tok.vocab_size, num_layers=1, hidden_dim=16,
        ...                                    max_sequence_length=16, causal=True)
        >>> generator = pl.generation.Generator(decoder, tok)
        >>> out = generator.generate(["a small", "the"], max_new_tokens=4, sampler="top_k",
        ...                          k=5, seed=0)
        >>> len(out), out == generator.generate(["a small", "the"], max_new_tokens=4,
        ...                                     sampler="top_k", k=5, seed=0)
        (2, True)
    """

    def __init__(self, backbone: keras.Model, tokenizer, jit_compile: bool = False):
        backbone = _decoding_backbone(backbone)
        self.decoder = decoder_for(backbone)
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.jit_compile = bool(jit_compile)
        self._loops = {}

    # === Tokens ===
    def _special(self, ours: str, keras_hubs: str) -> list[int]:
        """`[id]` of a special token, by this library's name or KerasHub's; `[]` if none."""
        for name in (ours, keras_hubs):
            value = getattr(self.tokenizer, name, None)
            if value is not None:
                return [int(value)]
        return []

    def _start_ids(self) -> list[int]:
        return self._special("cls_id", "start_token_id")

    def _default_stops(self) -> list[int]:
        return self._special("sep_id", "end_token_id")

    def _pad_id(self) -> int:
        return (self._special("pad_id", "pad_token_id") or [0])[0]

    def encode(self, prompts: list[str]) -> list[list[int]]:
        """Each prompt's ids, after the start token."""
        return [self._start_ids() + row for row in self._token_ids(prompts)]

    def _token_ids(self, texts: list[str]) -> list[list[int]]:
        if hasattr(self.tokenizer, "token_ids"):
            ragged = self.tokenizer.token_ids(texts)
        else:
            ragged = self.tokenizer(tf.constant(texts))
        rows = ragged.to_list() if hasattr(ragged, "to_list") else [list(r) for r in ragged]
        return [[int(i) for i in row] for row in rows]

    def decode(self, ids: list[int]) -> str:
        if not ids:
            return ""
        text = self.tokenizer.detokenize(np.asarray(ids, "int32"))
        text = text.numpy() if hasattr(text, "numpy") else text
        return text.decode("utf-8") if isinstance(text, bytes) else str(text)

    # === Scoring given texts ===
    def log_likelihood(self, prompts, targets, batch_size: int = 32) -> dict[str, np.ndarray]:
        """How likely the backbone finds each target after its prompt (teacher forcing).

        Each row is `[start] prompt target [end]` (the layout `pl.data.prompt_dataset`
        fine-tunes on); only the target's tokens and the end token are scored. Returns
        per example `log_likelihood` (the sum of the scored tokens' natural-log
        probabilities), `tokens` (how many were scored) and `correct` (how many were
        the most likely token): the perplexity of the targets is
        `exp(-log_likelihood.sum() / tokens.sum())`.

        Args:
            prompts: the texts the targets follow.
            targets: one text per prompt.
            batch_size: rows per forward pass.

        Examples:
            >>> import numpy as np, pretrainlib as pl
            >>> tok = pl.text.WordPieceTokenizer.train(["a dog barks", "a cat sleeps"] * 4, 40)
            >>> decoder = pl.backbones.TextEncoder(tok.vocab_size, num_layers=1, hidden_dim=8,
            ...                                    max_sequence_length=12, causal=True)
            >>> scores = pl.generation.Generator(decoder, tok).log_likelihood(
            ...     ["a dog"], ["barks"])
            >>> scores["tokens"].tolist(), bool(scores["log_likelihood"][0] < 0)
            ([2], True)
        """
        prompts, targets = validation.text_pairs(prompts, targets)
        validation.positive_int("batch_size", batch_size)
        encoded = self.encode(prompts)
        ends = self._default_stops()[:1]
        rows = [prompt + target + ends
                for prompt, target in zip(encoded, self._token_ids(targets))]
        longest, limit = max(len(row) for row in rows), self.decoder.max_length
        if limit is not None and longest > limit:
            raise ValueError(
                f"The longest (prompt, target) row is {longest} tokens; the backbone takes at "
                f"most {limit}. Shorten the prompts or targets.")
        scores = {"log_likelihood": [], "tokens": [], "correct": []}
        for start in range(0, len(rows), batch_size):
            batch, prompt_lengths = rows[start:start + batch_size], encoded[start:start +
                                                                            batch_size]
            length = max(len(row) for row in batch)
            token_ids = np.full((len(batch), length), self._pad_id(), "int32")
            scored = np.zeros((len(batch), length - 1), "float32")
            for i, (row, prompt) in enumerate(zip(batch, prompt_lengths)):
                token_ids[i, :len(row)] = row
                scored[i, len(prompt) - 1:len(row) - 1] = 1  # positions predicting the target
            log_probs, correct = self._score(tf.constant(token_ids))
            scores["log_likelihood"].append((log_probs.numpy() * scored).sum(axis=1))
            scores["tokens"].append(scored.sum(axis=1))
            scores["correct"].append((correct.numpy() * scored).sum(axis=1))
        return {name: np.concatenate(parts).astype("float64" if name == "log_likelihood"
                                                    else "int64")
                for name, parts in scores.items()}

    @tf.function(reduce_retracing=True)
    def _score(self, token_ids):
        """Each next token's log-probability and whether it was the most likely."""
        logits = tf.cast(self.decoder.logits(token_ids)[:, :-1], "float32")
        following = token_ids[:, 1:]
        log_probs = -tf.nn.sparse_softmax_cross_entropy_with_logits(following, logits)
        correct = tf.cast(tf.argmax(logits, axis=-1, output_type="int32") == following,
                          "float32")
        return log_probs, correct

    # === Generation ===
    def generate(self, prompts, max_new_tokens: int = 32, sampler: str = "greedy",
                 k: int = 5, p: float = 0.9, temperature: float = 1.0, seed: int = 0,
                 stop_token_ids=None, use_cache: bool = True,
                 batch_size: int | None = None, num_beams: int = 4,
                 repetition_penalty: float = 1.0) -> list[str]:
        """The continuation of each prompt (without the prompt).

        Args:
            prompts: a list of texts (an empty text starts from the start token alone).
            max_new_tokens: most tokens generated per prompt (>= 1); the longest
                prompt plus this must fit the backbone's maximum sequence length.
            sampler: `"greedy"`, `"top_k"`, `"top_p"`, `"random"` or `"beam"`
                (beam search: the continuation of highest total log-probability among
                `num_beams` kept at every step, as KerasHub's `BeamSampler`; a finished
                beam keeps its score, so short continuations are favoured).
            k: how many of the most likely tokens `top_k` samples from.
            p: the probability mass `top_p` samples from, in (0, 1].
            temperature: divides the logits before sampling (> 0).
            seed: the sampling seed: the same seed, the same texts.
            stop_token_ids: ids that end a row (default: the tokenizer's end token).
            use_cache: decode with the key/value cache.
            batch_size: decode this many prompts at a time (default: all at once);
                with a sampler, each batch draws from the seed and its own index.
            num_beams: the beams of `"beam"` search (1: greedy).
            repetition_penalty: above 1, discourages tokens already in the row (prompt
                or generated): their logits are divided by it where positive and
                multiplied where negative (CTRL's penalty, as Hugging Face's
                `repetition_penalty`); 1 leaves the logits alone.
        """
        new, encoded = self.generate_ids(prompts, max_new_tokens, sampler, k, p, temperature,
                                         seed, stop_token_ids, use_cache, batch_size,
                                         num_beams, repetition_penalty)
        return [self._continuation(prompt[len(self._start_ids()):], ids)
                for prompt, ids in zip(encoded, new)]

    def _continuation(self, prompt: list[int], new: list[int]) -> str:
        # Decoded with the prompt, so a word piece that continues the prompt's last
        # word joins it; the prompt's own text is then cut off.
        whole, before = self.decode(prompt + new), self.decode(prompt)
        if whole.startswith(before):
            return whole[len(before):].strip()
        return self.decode(new)

    def generate_ids(self, prompts, max_new_tokens: int = 32, sampler: str = "greedy",
                     k: int = 5, p: float = 0.9, temperature: float = 1.0, seed: int = 0,
                     stop_token_ids=None, use_cache: bool = True,
                     batch_size: int | None = None, num_beams: int = 4,
                     repetition_penalty: float = 1.0):
        """`(new ids per prompt, prompt ids per prompt)`: what `generate` decodes."""
        prompts = validation.string_list("prompts", prompts)
        validation.positive_int("max_new_tokens", max_new_tokens)
        validation.non_negative_int("seed", seed)
        if batch_size is not None:
            validation.positive_int("batch_size", batch_size)
        penalty = validation.positive_float("repetition_penalty", repetition_penalty)
        if sampler == "beam":
            validation.positive_int("num_beams", num_beams)
            choose, sampling = None, ("beam", num_beams, penalty)
        else:
            choose, sampling = make_sampler(sampler, k, p, temperature), (sampler, k, p,
                                                                          temperature, penalty)
        stops = self._default_stops() if stop_token_ids is None else [
            int(i) for i in stop_token_ids]
        encoded = self.encode(prompts)
        longest = max(len(row) for row in encoded)
        if longest == 0:
            raise ValueError("The prompts are empty and the tokenizer has no start token: "
                             "give at least one token of prompt.")
        length = longest + max_new_tokens
        limit = self.decoder.max_length
        if limit is not None and length > limit:
            raise ValueError(
                f"The longest prompt ({longest} tokens) plus `max_new_tokens`="
                f"{max_new_tokens} is {length} tokens; the backbone takes at most {limit}. "
                "Lower `max_new_tokens` or shorten the prompts.")
        size = batch_size or len(encoded)
        new = []
        for index, start in enumerate(range(0, len(encoded), size)):
            new += self._generate_batch(encoded[start:start + size], max_new_tokens, choose,
                                        sampling, stops, use_cache, [seed, index])
        return new, encoded

    def _generate_batch(self, encoded, max_new_tokens, choose, sampling, stops, use_cache,
                        seed) -> list[list[int]]:
        length = max(len(row) for row in encoded) + max_new_tokens
        pad = self._pad_id()
        token_ids = np.full((len(encoded), length), pad, "int32")
        prompt_mask = np.zeros((len(encoded), length), bool)
        for i, row in enumerate(encoded):
            token_ids[i, :len(row)] = row
            prompt_mask[i, :len(row)] = True
        key = (*sampling, tuple(stops), bool(use_cache))
        if key not in self._loops:
            penalty = sampling[-1]
            loop = (functools.partial(self._beam_loop, sampling[1], penalty) if choose is None
                    else functools.partial(self._loop, choose, penalty))
            self._loops[key] = tf.function(
                lambda *a: loop(stops, use_cache, *a),
                jit_compile=self.jit_compile, reduce_retracing=True)
        out = self._loops[key](tf.constant(token_ids), tf.constant(prompt_mask),
                               tf.constant(max_new_tokens), tf.constant(seed, "int64"))
        out = out.numpy()
        new = []
        for i, row in enumerate(encoded):
            generated = list(out[i, len(row):len(row) + max_new_tokens])
            for j, token in enumerate(generated):
                if token in stops:
                    generated = generated[:j]
                    break
            new.append([int(t) for t in generated])
        return new

    def _loop(self, choose, penalty, stops, use_cache, token_ids, prompt_mask, max_new, seed):
        decoder, length = self.decoder, tf.shape(token_ids)[1]
        lengths = tf.reduce_sum(tf.cast(prompt_mask, "int32"), axis=1)
        stop_ids = tf.constant(stops or [-1], "int32")
        cache = decoder.build_cache(token_ids) if use_cache else tf.zeros([0])

        def step(index, token_ids, cache, done):
            logits, cache = self._next_logits(use_cache, token_ids, cache, index, penalty)
            chosen = choose(logits, tf.random.experimental.stateless_fold_in(seed, index))
            in_prompt = prompt_mask[:, index]
            chosen = tf.where(in_prompt, token_ids[:, index], chosen)
            if stops:
                chosen = tf.where(done, token_ids[:, index], chosen)
                stopped = tf.reduce_any(chosen[:, None] == stop_ids[None, :], axis=1)
                done = done | (~in_prompt & stopped) | (index + 1 - lengths >= max_new)
            # Without stop tokens every row runs to the end: the longest prompt's row
            # needs all `length` positions, and the others' extra tokens are cut off.
            return index + 1, _write(token_ids, index, chosen), cache, done

        def going(index, token_ids, cache, done):
            if stops:
                return (index < length) & ~tf.reduce_all(done)
            return index < length

        start = tf.reduce_min(lengths)
        _, token_ids, _, _ = tf.while_loop(
            going, step, (start, token_ids, cache, tf.zeros_like(lengths, "bool")))
        return token_ids

    def _next_logits(self, use_cache, token_ids, cache, index, penalty=1.0):
        """The logits of the token at `index` (`[batch, vocab]`, float32, the
        repetition `penalty` applied), the cache after."""
        if use_cache:
            logits, cache = self.decoder.call_with_cache(token_ids[:, index - 1:index], cache,
                                                         index - 1)
            logits = logits[:, 0]
        else:
            logits = self.decoder.logits(token_ids)[:, index - 1]
        logits = tf.cast(logits, "float32")
        if penalty != 1.0:
            # Every token written before `index` (the prompt's, then the generated).
            written = token_ids[:, :index]
            rows = tf.repeat(tf.range(tf.shape(written)[0]), tf.shape(written)[1])
            counts = tf.scatter_nd(tf.stack([rows, tf.reshape(written, [-1])], axis=1),
                                   tf.ones_like(rows, "float32"), tf.shape(logits))
            logits = tf.where(counts > 0, tf.where(logits > 0, logits / penalty,
                                                   logits * penalty), logits)
        return logits, cache

    def _beam_loop(self, beams, penalty, stops, use_cache, token_ids, prompt_mask, max_new,
                   seed):
        """Beam search: every prompt's row repeated `beams` times; at each step every
        beam's continuations are scored (its total log-probability plus the token's)
        and the `beams` best of a prompt are kept, their rows and caches gathered."""
        batch, length = tf.shape(token_ids)[0], tf.shape(token_ids)[1]
        token_ids = tf.repeat(token_ids, beams, axis=0)
        prompt_mask = tf.repeat(prompt_mask, beams, axis=0)
        lengths = tf.reduce_sum(tf.cast(prompt_mask, "int32"), axis=1)
        stop_ids = tf.constant(stops or [-1], "int32")
        # Large but finite, so sums of them stay ordered and never turn into NaN.
        impossible = tf.constant(-1e9, "float32")
        # The beams of a prompt start identical: only the first may expand at first.
        scores = tf.reshape(tf.tile(tf.concat([[0.0], tf.fill([beams - 1], impossible)], 0)
                                    [None], [batch, 1]), [-1])
        cache = self.decoder.build_cache(token_ids) if use_cache else tf.zeros([0])
        firsts = tf.range(batch)[:, None] * beams

        def step(index, token_ids, cache, scores, done):
            logits, cache = self._next_logits(use_cache, token_ids, cache, index, penalty)
            vocab = tf.shape(logits)[1]
            log_probs = tf.nn.log_softmax(logits, axis=-1)
            # A row inside its prompt, or finished, has one continuation (its prompt's
            # token, or padding) and it costs nothing.
            in_prompt = prompt_mask[:, index]
            forced = tf.where(tf.one_hot(token_ids[:, index], vocab) > 0, 0.0, impossible)
            log_probs = tf.where((in_prompt | done)[:, None], forced, log_probs)
            totals = tf.reshape(scores[:, None] + log_probs, [batch, beams * vocab])
            scores, best = tf.math.top_k(totals, k=beams)
            rows = tf.reshape(best // vocab + firsts, [-1])
            chosen = tf.reshape(best % vocab, [-1])
            token_ids, done = tf.gather(token_ids, rows), tf.gather(done, rows)
            if use_cache:
                cache = tf.gather(cache, rows)
            stopped = tf.reduce_any(chosen[:, None] == stop_ids[None, :], axis=1)
            done = done | (~in_prompt & stopped) | (index + 1 - lengths >= max_new)
            token_ids = _write(token_ids, index, chosen)
            return index + 1, token_ids, cache, tf.reshape(scores, [-1]), done

        def going(index, token_ids, cache, scores, done):
            return (index < length) & ~tf.reduce_all(done)

        _, token_ids, _, _, _ = tf.while_loop(
            going, step, (tf.reduce_min(lengths), token_ids, cache, scores,
                          tf.zeros_like(lengths, "bool")))
        return tf.gather(token_ids, firsts[:, 0])  # top_k sorts: a prompt's first beam is best


def _decoding_backbone(model: keras.Model) -> keras.Model:
    """`model`, or the backbone inside a model that holds one (a FineTuner with
    `pl.heads.CausalLMHead`, a CausalLM Pretrainer, a KerasHub causal LM task)."""
    inner = getattr(model, "backbone", None)
    if not isinstance(inner, keras.Model):
        return model
    adapters = getattr(model, "adapters", None)
    if adapters is not None and not getattr(adapters, "in_place", True):
        raise ValueError(
            f"{type(model).__name__} runs its backbone through {adapters!r}, which adds "
            "layers the decoder cannot run step by step. Fine-tune with "
            "adapters=pl.freezing.LoRA(...) (merged into the backbone's layers) to "
            "generate.")
    return inner


def _write(token_ids, index, chosen):
    """`token_ids` with column `index` set to `chosen` (one id per row)."""
    rows = tf.range(tf.shape(chosen)[0])
    return tf.tensor_scatter_nd_update(
        token_ids, tf.stack([rows, tf.fill(tf.shape(rows), index)], axis=1), chosen)
