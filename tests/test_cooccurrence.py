import numpy as np
import pytest

import pretrainlib as pl
from pretrainlib.text import cooccurrence
from pretrainlib.text.cooccurrence import _pair_counts, _ppmi, _randomized_svd


def test_rows_have_the_asked_length_and_shape(glosses, tokenizer):
    matrix = pl.text.cooccurrence_embeddings(glosses, tokenizer, dim=32, norm=0.5)
    assert matrix.shape == (tokenizer.vocab_size, 32) and matrix.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 0.5, rtol=1e-5)


def test_randomized_svd_matches_the_exact_one(glosses, tokenizer):
    sparse = _ppmi(*_pair_counts(glosses, tokenizer, tokenizer.vocab_size, 5),
                   tokenizer.vocab_size, 0.75)
    dense = np.zeros(sparse.dense_shape.numpy(), "float64")
    dense[tuple(sparse.indices.numpy().T)] = sparse.values.numpy()
    exact = np.linalg.svd(dense, compute_uv=False)[:16]
    _, approximate = _randomized_svd(sparse, 16, iterations=6, seed=0)
    # The leading directions are exact; the tail, where the spectrum is flat, close.
    np.testing.assert_allclose(approximate[:8], exact[:8], rtol=2e-3)
    np.testing.assert_allclose(approximate, exact, rtol=2e-2)


def test_embeddings_carry_meaning_on_real_glosses(wordnet, glosses, tokenizer):
    """Nearest-centroid on mean-pooled embeddings: co-occurrence beats random."""
    matrix = pl.text.cooccurrence_embeddings(glosses, tokenizer, dim=32)
    random = np.random.default_rng(0).normal(size=matrix.shape)

    def accuracy(embeddings):
        def features(texts):
            rows = [embeddings[np.asarray(ids)].mean(0) for ids in tokenizer.tokenize(texts)]
            rows = np.stack(rows)
            return rows / np.linalg.norm(rows, axis=1, keepdims=True)

        train, test = wordnet.train.sample(300, seed=0), wordnet.test.sample(600, seed=0)
        x = features(train.texts)
        centroids = np.stack([x[np.asarray(train.labels) == c].mean(0) for c in range(6)])
        predicted = np.argmax(features(test.texts) @ centroids.T, axis=1)
        return float(np.mean(predicted == np.asarray(test.labels)))

    assert accuracy(matrix) > accuracy(random) + 0.1


@pytest.mark.parametrize(
    "kwargs, fragment",
    [({"dim": 10_000}, "dim"), ({"smoothing": 0}, "smoothing"), ({"window": 0}, "window"),
     ({"norm": -1.0}, "norm")],
)
def test_bad_arguments_are_named(glosses, tokenizer, kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        pl.text.cooccurrence_embeddings(glosses[:50], tokenizer, **kwargs)


def test_texts_without_pairs_are_rejected(tokenizer):
    with pytest.raises(ValueError, match="no two tokens"):
        pl.text.cooccurrence_embeddings(["a", "the"], tokenizer, dim=4)
    with pytest.raises(TypeError, match="texts"):
        pl.text.cooccurrence_embeddings([1, 2], tokenizer, dim=4)


@pytest.mark.slow
def test_counts_streamed_in_blocks_equal_one_pass_and_files_equal_lists(
        glosses, tokenizer, tmp_path, monkeypatch):
    whole = _pair_counts(glosses, tokenizer, tokenizer.vocab_size, 3)
    monkeypatch.setattr(cooccurrence, "_BLOCK", 100)  # 30 blocks, merged as they come
    blocks = _pair_counts(iter(glosses), tokenizer, tokenizer.vocab_size, 3)
    np.testing.assert_array_equal(whole[0], blocks[0])
    np.testing.assert_array_equal(whole[1], blocks[1])
    monkeypatch.setattr(cooccurrence, "_DENSE_BYTES", 0)  # sparse merging, as for big
    sparse = _pair_counts(iter(glosses), tokenizer, tokenizer.vocab_size, 3)  # vocabularies
    np.testing.assert_array_equal(whole[0], sparse[0])
    np.testing.assert_array_equal(whole[1], sparse[1])
    monkeypatch.setenv("PRETRAINLIB_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "glosses.txt"
    path.write_text("\n".join(g.replace("\n", " ") for g in glosses))
    from_file = pl.text.cooccurrence_embeddings(str(path), tokenizer, dim=8)
    from_list = pl.text.cooccurrence_embeddings(glosses, tokenizer, dim=8)
    np.testing.assert_allclose(from_file, from_list, atol=1e-5)
