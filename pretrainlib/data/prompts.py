"""(prompt, target) pairs for fine-tuning a causal model to write the target."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from pretrainlib import epochs, validation


def prompt_dataset(prompts, targets, tokenizer, batch_size: int = 32,
                   sequence_length: int = 64, shuffle: bool = True,
                   seed: int | None = None) -> tf.data.Dataset:
    """Builds a batched dataset of `[CLS] prompt target [SEP]` rows for sequence-to-
    sequence fine-tuning of a causal model (`pl.objectives.CausalLM`): the loss counts
    the target's tokens and the closing `[SEP]` only, never the prompt's.

    Elements are `{"token_ids", "padding_mask", "target_mask"}` (int32, `[batch,
    sequence_length]`), right-padded; `target_mask` is 1 on the target's tokens and
    the `[SEP]` after them. `CausalLM` then weighs each next-token prediction by the
    `target_mask` of the token predicted. Every epoch is reshuffled, its order a
    function of `seed` and the epoch alone. A pair longer than `sequence_length`
    tokens is an error (naming how many and the longest), not silently cut.

    Args:
        prompts: the inputs the model is given, e.g. `"dog :"`.
        targets: what it should write after each prompt.
        tokenizer: a `pl.text.WordPieceTokenizer`.
        batch_size: rows per batch.
        sequence_length: tokens per row.
        shuffle: reshuffle every epoch.
        seed: seed of the epochs' orders.

    Examples:
        >>> import pretrainlib as pl
        >>> tok = pl.text.WordPieceTokenizer.train(["dog : a small pet", "cat : a pet"], 40)
        >>> ds = pl.data.prompt_dataset(["dog :"], ["a small pet"], tok, batch_size=1,
        ...                             sequence_length=10)
        >>> row = next(iter(ds))
        >>> row["target_mask"][0].numpy().tolist()  # [CLS] dog : | a small pet [SEP] | pad
        [0, 0, 0, 1, 1, 1, 1, 0, 0, 0]
    """
    prompts, targets = validation.text_pairs(prompts, targets)
    validation.positive_int("batch_size", batch_size)
    validation.positive_int("sequence_length", sequence_length)
    prompt_ids = tokenizer.token_ids(prompts).to_list()
    target_ids = tokenizer.token_ids(targets).to_list()
    lengths = np.array([len(p) + len(t) + 2 for p, t in zip(prompt_ids, target_ids)])
    too_long = int((lengths > sequence_length).sum())
    if too_long:
        raise ValueError(
            f"{too_long} (prompt, target) pairs are longer than `sequence_length`="
            f"{sequence_length} tokens (the longest: {int(lengths.max())}, with [CLS] and "
            "[SEP]). Raise `sequence_length` or shorten them.")
    n = len(prompts)
    token_ids = np.full((n, sequence_length), tokenizer.pad_id, "int32")
    padding_mask = np.zeros((n, sequence_length), "int32")
    target_mask = np.zeros((n, sequence_length), "int32")
    for i, (prompt, target) in enumerate(zip(prompt_ids, target_ids)):
        row = [tokenizer.cls_id, *prompt, *target, tokenizer.sep_id]
        token_ids[i, :len(row)] = row
        padding_mask[i, :len(row)] = 1
        target_mask[i, 1 + len(prompt):len(row)] = 1
    columns = ({"token_ids": token_ids, "padding_mask": padding_mask,
                "target_mask": target_mask},)
    return epochs.Examples(columns, batch_size, shuffle=shuffle, seed=seed).dataset()
