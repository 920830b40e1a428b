import numpy as np
import pytest

import pretrainlib as pl


def test_packed_rows_are_full_and_start_with_cls(tokenizer, glosses):
    ds = pl.data.text_dataset(glosses, tokenizer, batch_size=8, sequence_length=32, pack=True,
                              seed=0)
    batches = list(ds)
    assert len(batches) == int(ds.cardinality())
    for batch in batches:
        ids = batch["token_ids"].numpy()
        assert ids.shape == (8, 32)
        assert (ids[:, 0] == tokenizer.cls_id).all()
        assert batch["padding_mask"].numpy().all()
        assert not (ids == tokenizer.pad_id).any()


def test_packing_keeps_every_token_but_the_tail(tokenizer, glosses):
    ds = pl.data.text_dataset(glosses, tokenizer, batch_size=4, sequence_length=32, pack=True,
                              seed=0)
    packed = np.concatenate([b["token_ids"].numpy()[:, 1:].ravel() for b in ds])
    docs = [tokenizer.tokenize(t) for t in glosses]  # eager str -> list of ids
    total = sum(len(d) + 1 for d in docs)  # each document ends with [SEP]
    assert total - packed.size < 4 * 31 + 31  # dropped: under one batch plus one row
    separators = (packed == tokenizer.sep_id).sum()
    assert separators >= len(glosses) * packed.size / total - 2


def test_packing_reshuffles_every_epoch(tokenizer, glosses):
    ds = pl.data.text_dataset(glosses, tokenizer, batch_size=4, sequence_length=32, pack=True,
                              seed=0)
    first = next(iter(ds))["token_ids"].numpy()
    second = next(iter(ds))["token_ids"].numpy()
    assert not np.array_equal(first, second)


def test_packing_saves_compute_on_short_glosses(tokenizer, glosses):
    padded = pl.data.text_dataset(glosses, tokenizer, batch_size=16, sequence_length=128)
    packed = pl.data.text_dataset(glosses, tokenizer, batch_size=16, sequence_length=128,
                                  pack=True)
    real = sum(int(b["padding_mask"].numpy().sum()) for b in padded)
    fill = real / (int(padded.cardinality()) * 16 * 128)
    assert fill < 0.3  # short glosses leave most of a 128-token row as padding
    assert int(packed.cardinality()) < 1.1 * fill * int(padded.cardinality())


def test_labeled_dataset_pairs_texts_with_labels(tokenizer):
    texts = ["a dog", "a cat", "a tree"]
    ds = pl.data.text_dataset(texts, tokenizer, labels=[0, 1, 2], batch_size=3, shuffle=False,
                              sequence_length=8)
    x, y = next(iter(ds))
    np.testing.assert_array_equal(y.numpy(), [0, 1, 2])
    np.testing.assert_array_equal(x["token_ids"].numpy(),
                                  tokenizer.encode(texts, 8)["token_ids"].numpy())


@pytest.mark.parametrize(
    "kwargs, error, fragment",
    [
        (dict(texts=["a", 2]), TypeError, "texts"),
        (dict(texts=[]), ValueError, "texts"),
        (dict(texts="one string"), FileNotFoundError, "texts go in a list"),
        (dict(labels=[0]), ValueError, "labels"),
        (dict(labels=[0.5, "a"]), TypeError, "labels"),
        (dict(labels=["a", "b"], label_vocabulary=["a"]), ValueError, "label vocabulary"),
        (dict(labels=[-1, 0]), ValueError, "labels"),
        (dict(labels=[0, 1], pack=True), ValueError, "pack"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(sequence_length=2), ValueError, "sequence_length"),
        (dict(pack=True, batch_size=1000), ValueError, "batch_size"),
    ],
)
def test_bad_input_is_rejected_with_the_argument_named(tokenizer, kwargs, error, fragment):
    call = dict(texts=["a dog", "a cat"], tokenizer=tokenizer)
    call.update(kwargs)
    with pytest.raises(error, match=fragment):
        pl.data.text_dataset(**call)


def test_reset_attention_numbers_documents_and_isolates_them(tokenizer, glosses,
                                                             tiny_encoder):
    ds = pl.data.text_dataset(glosses[:200], tokenizer, batch_size=64, sequence_length=32,
                              pack=True, reset_attention=True, shuffle=False)
    batch = next(iter(ds))
    ids, segments = batch["token_ids"].numpy(), batch["padding_mask"].numpy()
    for row_ids, row_segments in zip(ids, segments):
        ends = np.cumsum(row_ids == tokenizer.sep_id) - (row_ids == tokenizer.sep_id)
        np.testing.assert_array_equal(row_segments, 1 + ends)  # [SEP] closes its document
    encoder = tiny_encoder()
    pick = int(np.argmax(segments.max(axis=1)))  # the row with the most documents
    row, segments = ids[pick:pick + 1], segments[pick:pick + 1]
    assert segments.max() >= 3
    first_end = int(np.argmax(row[0] == tokenizer.sep_id))  # the first document
    changed = row.copy()
    changed[0, first_end + 1:] = tokenizer.token_to_id("the")
    alone = np.zeros_like(row)
    alone[0, :first_end + 1] = row[0, :first_end + 1]

    def features(token_ids, mask):
        return encoder({"token_ids": token_ids, "padding_mask": mask})["sequence_output"][0]

    packed = features(row, segments)
    np.testing.assert_allclose(packed[:first_end + 1],
                               features(changed, segments)[:first_end + 1], atol=1e-5)
    np.testing.assert_allclose(packed[:first_end + 1],
                               features(alone, (alone > 0).astype("int32"))[:first_end + 1],
                               atol=1e-5)  # as if the document had its own row
    shared = features(row, np.ones_like(row))
    assert not np.allclose(shared[:first_end + 1],
                           features(changed, np.ones_like(row))[:first_end + 1], atol=1e-5)
    with pytest.raises(ValueError, match="pack=True"):
        pl.data.text_dataset(glosses[:10], tokenizer, reset_attention=True)
