"""Next-token logits through the backbone's own token embedding: a head for writing."""

from __future__ import annotations

import keras
import keras_hub

from pretrainlib.heads.dense_head import select_feature
from pretrainlib.losses import MaskedTokenCrossentropy, next_token_targets
from pretrainlib.protocol import DeclaresLoss


def next_token_metrics() -> list:
    """Next-token `accuracy` and `perplexity` (KerasHub's), weighted by the targets'
    weights: what `CausalLMHead` and `pl.objectives.CausalLM` report."""
    return [keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            keras_hub.metrics.Perplexity(from_logits=True, name="perplexity")]


class _Tied:
    """A plain holder of the embedding the head reads: Keras tracks layers it finds in
    a layer's attributes, and this one belongs to the backbone (its weights must be
    saved, counted and frozen once, with the backbone's group)."""

    def __init__(self, embedding):
        self.embedding = embedding


@keras.saving.register_keras_serializable(package="pretrainlib")
class CausalLMHead(DeclaresLoss, keras.layers.Layer):
    """Fine-tunes a causal backbone to write: next-token logits over the vocabulary.

    The output layer is the backbone's token embedding used in reverse (tied
    weights, as `pl.objectives.CausalLM` pretrains it), so the head owns no weights:
    it is linked to the backbone when the FineTuner is built (and again when one is
    loaded), and the embedding trains, freezes and saves with the backbone's group.
    A FineTuner with this head reads rows of tokens, not (inputs, labels):
    `pl.data.prompt_dataset(prompts, targets, tok)` rows fine-tune it to write each
    target after its prompt (the loss and the metrics count the target's tokens
    only), `pl.data.text_dataset(texts, tok, pack=True)` rows go on pretraining it
    on your text. Its defaults: the masked token cross-entropy, with next-token
    `accuracy` and `perplexity`. The freezing policies and adapters apply as to any
    head (`adapters=pl.freezing.LoRA(8)` trains the LoRA updates alone); with no
    policy the FineTuner trains everything (`FullFineTune()`), since a stage that
    trains the head alone would train nothing. `pl.generation.Generator(ft, tok)`
    writes with the fine-tuned model.

    Needs a causal backbone with a `token_embedding`:
    `pl.backbones.TextEncoder(..., causal=True)` or a KerasHub decoder (GPT-2,
    Llama, ...).

    Args:
        feature: the backbone output to read when it returns a dict (a sequence
            `[batch, positions, width]`).

    Examples:
        >>> import pretrainlib as pl
        >>> tok = pl.text.WordPieceTokenizer.train(["dog : a small pet", "cat : a pet"], 40)
        >>> decoder = pl.backbones.TextEncoder(tok.vocab_size, num_layers=1, hidden_dim=16,
        ...                                    max_sequence_length=12, causal=True)
        >>> ft = pl.FineTuner(decoder, pl.heads.CausalLMHead(), adapters=pl.freezing.LoRA(4))
        >>> ft.compile(learning_rate=1e-2)
        >>> rows = pl.data.prompt_dataset(["dog :", "cat :"], ["a small pet", "a pet"], tok,
        ...                               batch_size=2, sequence_length=12, seed=0)
        >>> sorted(ft.fit(rows, epochs=2, verbose=0).history)
        ['accuracy', 'loss', 'perplexity']
        >>> text = pl.generation.Generator(ft, tok).generate(["dog :"], max_new_tokens=3)[0]
    """

    task = "generation"

    def __init__(self, feature: str = "sequence_output", **kwargs):
        super().__init__(**kwargs)
        self.feature = feature
        self._tied = None

    # === Linked to the backbone ===
    def bind(self, token_embedding: keras.layers.Layer) -> None:
        """Reads logits through `token_embedding` (the backbone's, reversed)."""
        self._tied = _Tied(token_embedding)

    @property
    def token_embedding(self) -> keras.layers.Layer | None:
        """The backbone's token embedding this head reads through (None until bound)."""
        return None if self._tied is None else self._tied.embedding

    # === Data and defaults ===
    def transform(self, batch):
        """Rows of tokens to `(inputs, next tokens, weights)`; see
        `pl.losses.next_token_targets`."""
        return next_token_targets(batch)

    def default_loss(self):
        return MaskedTokenCrossentropy()

    def default_weighted_metrics(self) -> list:
        return next_token_metrics()

    # === Layer ===
    def _sequence(self, features):
        return select_feature(features, self.feature)

    def build(self, input_shape):
        if self._tied is None:
            raise ValueError(
                "CausalLMHead reads logits through a backbone's token embedding: use it as "
                "the head of a pl.FineTuner (which links it), or call "
                "`head.bind(backbone.token_embedding)` first.")
        shape = tuple(self._sequence(input_shape))
        if len(shape) != 3:
            raise ValueError(
                f"CausalLMHead reads a sequence [batch, positions, width]; `{self.feature}` "
                f"has shape {shape}.")

    def build_from_config(self, config):
        # Loading builds layers from their configs before the FineTuner links this one;
        # it is built when the FineTuner calls it.
        if self._tied is not None:
            super().build_from_config(config)

    def call(self, features, training=None):
        return self.token_embedding(self._sequence(features), reverse=True)

    def compute_output_shape(self, input_shape):
        shape = tuple(self._sequence(input_shape))
        return shape[:-1] + (self.token_embedding.input_dim,)

    def get_config(self):
        return {**super().get_config(), "feature": self.feature}
