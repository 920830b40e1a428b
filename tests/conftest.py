import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# File indexes the tests build (theirs and their subprocesses') go to a temporary
# folder, not the user's ~/.cache.
os.environ.setdefault("PRETRAINLIB_CACHE", __import__("tempfile").mkdtemp(prefix="pl-cache-"))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import pretrainlib as pl  # noqa: E402


@pytest.fixture(scope="session")
def wordnet():
    return pl.datasets.wordnet_supersenses()


@pytest.fixture(scope="session")
def glosses(wordnet):
    """3,000 real unlabeled WordNet glosses."""
    return wordnet.unlabeled[::36][:3000]


@pytest.fixture(scope="session")
def tokenizer(glosses):
    return pl.text.WordPieceTokenizer.train(glosses, vocab_size=600)


@pytest.fixture
def tiny_encoder(tokenizer):
    def build(**kwargs):
        config = dict(num_layers=2, hidden_dim=32, num_heads=2, max_sequence_length=32)
        config.update(kwargs)
        return pl.backbones.TextEncoder(tokenizer.vocab_size, **config)

    keras.utils.set_random_seed(0)
    return build


@pytest.fixture
def labeled(wordnet, tokenizer):
    """A small labeled WordNet dataset builder: (n, seed) -> tf.data of (x, y)."""
    def build(n=64, seed=0, batch_size=16, shuffle=True, split="train"):
        part = getattr(wordnet, split).sample(n, seed=seed)
        return pl.data.text_dataset(part.texts, tokenizer, labels=part.labels,
                                    batch_size=batch_size, sequence_length=32,
                                    shuffle=shuffle, seed=seed)

    return build


def weights_of(layers):
    return [np.array(w) for layer in layers for w in layer.get_weights()]


# Files whose tests take longest in all (kill-and-resume, the protocol harness, the
# examples, several workers): they start first, so no worker is left with one of them
# at the end while the others idle.
LONGEST_FIRST = ["test_resume.py", "test_example_studies.py", "test_demo.py",
                 "test_protocol.py", "test_protocol_mirrored.py", "test_multi_worker.py",
                 "test_tune_page.py", "test_ship_page.py"]


def pytest_collection_modifyitems(config, items):
    """The longest files come first, so that pytest-xdist's `--dist loadfile` (dev.py's)
    does not leave one worker with one of them at the end while the other idles."""
    def rank(item):
        name = item.path.name
        return (LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST),
                0 if item.get_closest_marker("slow") else 1)

    items.sort(key=rank)  # stable: the order within a file is kept
