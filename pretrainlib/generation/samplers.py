"""Choosing the next token from logits: greedy, top-k, top-p (nucleus), temperature.

Each sampler is a function `(logits [batch, vocab], seed [2]) -> ids [batch]` built by
`sampler(...)`; the random ones draw statelessly from `seed`, so a generation
replays with its seed.
"""

from __future__ import annotations

import tensorflow as tf

from pretrainlib import validation

SAMPLERS = ("greedy", "top_k", "top_p", "random")


def sampler(name: str = "greedy", k: int = 5, p: float = 0.9, temperature: float = 1.0):
    """The function `(logits, seed) -> next ids` of a sampler `name`.

    - `"greedy"`: the most likely token.
    - `"top_k"`: sample among the `k` most likely tokens.
    - `"top_p"`: sample among the smallest set of most likely tokens whose
      probabilities sum to at least `p` (nucleus sampling; the top token always).
    - `"random"`: sample from the whole distribution.

    The random samplers divide the logits by `temperature` first (below 1: sharper,
    above 1: flatter).

    Examples:
        >>> import tensorflow as tf
        >>> from pretrainlib.generation.samplers import sampler
        >>> logits = tf.constant([[0.0, 5.0, 1.0]])
        >>> int(sampler("greedy")(logits, tf.constant([0, 0]))[0])
        1
        >>> int(sampler("top_k", k=1)(logits, tf.constant([0, 0]))[0])
        1
    """
    validation.one_of("sampler", name, SAMPLERS)
    temperature = validation.positive_float("temperature", temperature)
    if name == "top_k":
        validation.positive_int("k", k)
    if name == "top_p" and (isinstance(p, bool) or not isinstance(p, (int, float))
                            or not 0 < p <= 1):
        raise ValueError(f"`p` must be in (0, 1]. Received: p={p!r}")

    def greedy(logits, seed):
        return tf.argmax(logits, axis=-1, output_type="int32")

    def draw(logits, seed):
        return tf.cast(tf.random.stateless_categorical(logits, 1, seed)[:, 0], "int32")

    def top_k(logits, seed):
        values, indices = tf.math.top_k(logits / temperature, k=min(k, logits.shape[-1]))
        choice = draw(values, seed)
        return tf.gather(indices, choice, batch_dims=1)

    def top_p(logits, seed):
        order = tf.argsort(logits, axis=-1, direction="DESCENDING")
        ordered = tf.gather(logits / temperature, order, batch_dims=1)
        probabilities = tf.nn.softmax(ordered, axis=-1)
        before = tf.cumsum(probabilities, axis=-1, exclusive=True)  # mass above each token
        kept = tf.where(before < p, ordered, ordered.dtype.min)  # the first is always kept
        return tf.gather(order, draw(kept, seed), batch_dims=1)

    def random(logits, seed):
        return draw(logits / temperature, seed)

    return {"greedy": greedy, "top_k": top_k, "top_p": top_p, "random": random}[name]
