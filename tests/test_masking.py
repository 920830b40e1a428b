import keras
import numpy as np
import pytest

import pretrainlib as pl


def masked_batches(tokenizer, glosses, draws=20, **kwargs):
    objective = pl.objectives.MaskedLM(tokenizer=tokenizer, max_predictions=20, **kwargs)
    batch = tokenizer.encode(glosses[:256], 32)
    outs = [objective.transform(batch) for _ in range(draws)]
    return batch, outs


def test_masking_statistics_match_bert(tokenizer, glosses):
    batch, outs = masked_batches(tokenizer, glosses)
    original = batch["token_ids"].numpy()
    selectable = ~np.isin(original, tokenizer.special_ids)
    selected = replaced_by_mask = replaced_random = kept = 0
    for inputs, targets, weights in outs:
        positions = inputs["mask_positions"].numpy()
        weights = weights.numpy()
        masked_ids = inputs["token_ids"].numpy()
        targets = targets.numpy()
        for row in range(original.shape[0]):
            live = positions[row][weights[row] > 0]
            assert selectable[row, live].all(), "special or padding token selected"
            np.testing.assert_array_equal(targets[row][weights[row] > 0], original[row, live])
            selected += len(live)
            new = masked_ids[row, live]
            replaced_by_mask += (new == tokenizer.mask_id).sum()
            kept += (new == original[row, live]).sum()
            replaced_random += ((new != tokenizer.mask_id) & (new != original[row, live])).sum()
            untouched = np.setdiff1d(np.arange(original.shape[1]), live)
            np.testing.assert_array_equal(masked_ids[row, untouched], original[row, untouched])
    rate = selected / (selectable.sum() * len(outs))
    assert rate == pytest.approx(0.15, abs=0.01)
    assert replaced_by_mask / selected == pytest.approx(0.8, abs=0.02)
    # A random replacement can draw the original token (1 in vocab_size): small bias.
    assert replaced_random / selected == pytest.approx(0.1, abs=0.02)
    assert kept / selected == pytest.approx(0.1, abs=0.02)


def test_padding_is_never_masked_and_weights_zero_off_mask(tokenizer, glosses):
    batch, outs = masked_batches(tokenizer, glosses, draws=5)
    padding = batch["padding_mask"].numpy() == 0
    assert padding.any()
    for inputs, _, weights in outs:
        positions, weights = inputs["mask_positions"].numpy(), weights.numpy()
        for row in range(positions.shape[0]):
            assert not padding[row, positions[row][weights[row] > 0]].any()
        # Slots beyond the selected ones are padding with weight exactly 0.
        assert set(np.unique(weights)) <= {0.0, 1.0}
        np.testing.assert_array_equal(inputs["padding_mask"].numpy(), batch["padding_mask"])


@pytest.mark.parametrize("whole_word", [False, True])
def test_masks_change_every_epoch_and_replay_on_a_rerun_under_a_global_seed(
        tokenizer, glosses, whole_word):
    # Stateful tf.random ops in tf.data restart with each iterator once a seed is
    # set, so an epoch-by-epoch `fit` would see one mask forever. `fit` instead views
    # its epochs as one stream and batch i draws from the seed (base, i): every epoch
    # gets new masks, a rerun the same ones, and a view started at batch `first` (a
    # resumed run) continues the same sequence.
    def view(first=0, batches=4):
        keras.utils.set_random_seed(3)
        encoder = pl.backbones.TextEncoder(tokenizer.vocab_size, num_layers=1, hidden_dim=16,
                                           num_heads=2, max_sequence_length=32)
        objective = pl.objectives.MaskedLM(tokenizer=tokenizer, whole_word=whole_word)
        epoch = pl.data.text_dataset(glosses[:64], tokenizer, batch_size=32,
                                     sequence_length=32, shuffle=False)  # 2 batches
        stream = pl.Pretrainer(encoder, objective)._stream_view(epoch.repeat().skip(first),
                                                                first)
        return [x["token_ids"].numpy() for x, _, _ in stream.take(batches)]

    run = view()
    first, second = run[:2], run[2:]
    assert not any(np.array_equal(a, b) for a, b in zip(first, second))
    assert all(np.array_equal(a, b) for a, b in zip(run, view()))
    assert all(np.array_equal(a, b) for a, b in zip(run[1:], view(first=1, batches=3)))


@pytest.mark.parametrize("rate", [0, 1, -0.1, 1.5, "0.2"])
def test_mask_rate_outside_open_unit_interval_is_rejected(tokenizer, rate):
    with pytest.raises(ValueError, match="mask_rate"):
        pl.objectives.MaskedLM(tokenizer=tokenizer, mask_rate=rate)


def test_masked_lm_without_vocabulary_is_rejected():
    with pytest.raises(ValueError, match="tokenizer"):
        pl.objectives.MaskedLM()


def test_masked_lm_on_a_non_text_backbone_is_rejected(tokenizer):
    import keras

    image_backbone = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten()])
    with pytest.raises(ValueError, match="token_ids"):
        pl.Pretrainer(image_backbone, pl.objectives.MaskedLM(tokenizer=tokenizer))


def test_tokenizer_and_backbone_vocabulary_mismatch_is_rejected(tokenizer):
    backbone = pl.backbones.TextEncoder(tokenizer.vocab_size + 7, num_layers=1, hidden_dim=16)
    with pytest.raises(ValueError, match="vocab_size"):
        pl.Pretrainer(backbone, pl.objectives.MaskedLM(tokenizer=tokenizer))


def test_whole_word_masking_masks_every_piece_of_a_word_together(tokenizer, glosses):
    objective = pl.objectives.MaskedLM(tokenizer=tokenizer, whole_word=True, mask_rate=0.2,
                                       max_predictions=32)
    batch = tokenizer.encode(glosses[:256], 32)
    original = batch["token_ids"].numpy()
    pieces = np.isin(original, tokenizer.continuation_ids)
    assert pieces.any(), "the test needs words split into several pieces"
    special = np.isin(original, tokenizer.special_ids)
    words_seen = words_selected = 0
    for _ in range(10):
        inputs, targets, weights = objective.transform(batch)
        positions, weights = inputs["mask_positions"].numpy(), weights.numpy()
        for row in range(original.shape[0]):
            live = positions[row][weights[row] > 0]
            assert not special[row, live].any()
            np.testing.assert_array_equal(targets.numpy()[row][weights[row] > 0],
                                          original[row, live])
            chosen = np.zeros(original.shape[1], bool)
            chosen[live] = True
            starts = np.flatnonzero(~special[row] & ~pieces[row])
            for start in starts:
                end = start + 1
                while end < original.shape[1] and pieces[row, end]:
                    end += 1
                assert len(set(chosen[start:end])) == 1, "a word was split"
                words_seen += 1
                words_selected += chosen[start]
    assert words_selected / words_seen == pytest.approx(0.2, abs=0.01)


def test_whole_word_masking_needs_the_vocabulary_and_round_trips(tokenizer):
    with pytest.raises(ValueError, match="continuation_ids"):
        pl.objectives.MaskedLM(vocab_size=10, mask_id=4, whole_word=True)
    objective = pl.objectives.MaskedLM(tokenizer=tokenizer, whole_word=True)
    clone = pl.objectives.MaskedLM.from_config(objective.get_config())
    assert clone.whole_word and clone.continuation_ids == tokenizer.continuation_ids
