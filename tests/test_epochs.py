"""One epoch order per (seed, epoch): the pipelines of `pl.data` and the arrays given
to `fit` build each epoch from that key alone, whatever else read the data."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import pretrainlib as pl


def batches(dataset, take=None):
    dataset = dataset if take is None else dataset.take(take)
    return [tf.nest.map_structure(lambda t: t.numpy(), b) for b in dataset]


def same(a, b) -> bool:
    flat_a, flat_b = tf.nest.flatten(a), tf.nest.flatten(b)
    return len(flat_a) == len(flat_b) and all(
        x.shape == y.shape and (x == y).all() for x, y in zip(flat_a, flat_b))


@pytest.fixture(scope="module")
def texts():
    part = pl.datasets.wordnet_supersenses().train.sample(60, seed=0)
    tokenizer = pl.text.WordPieceTokenizer.train(part.texts, vocab_size=200)
    return part.texts, part.labels, tokenizer


@pytest.fixture(scope="module")
def images():
    part = pl.datasets.fashion_mnist().train.sample(40, seed=0)
    return part.images, part.labels


def sources(texts, images):
    words, labels, tokenizer = texts
    return {
        "text": pl.data.text_dataset(words, tokenizer, labels, batch_size=8,
                                     sequence_length=16, seed=3),
        "packed": pl.data.text_dataset(words, tokenizer, batch_size=4, sequence_length=16,
                                       pack=True, reset_attention=True, seed=3),
        "images": pl.data.image_dataset(
            *images, batch_size=8, seed=3,
            augment=[keras.layers.RandomTranslation(0.2, 0.2), keras.layers.RandomFlip()]),
        "arrays": pl.training.inputs.as_dataset("x", images[0], images[1], batch_size=8),
    }


@pytest.mark.parametrize("name", ["text", "packed", "images", "arrays"])
@pytest.mark.slow
def test_every_epoch_is_a_function_of_the_seed_and_the_epoch(name, texts, images):
    dataset = sources(texts, images)[name]
    source = pl.epochs.source_of(dataset)
    assert source is not None and int(dataset.cardinality()) == source.num_batches
    first = batches(source.epoch(2))
    for _ in range(3):  # iterators made over the dataset change nothing
        next(iter(dataset))
    assert all(same(a, b) for a, b in zip(first, batches(source.epoch(2))))
    # Resuming at batch 2 of epoch 2 builds the same batches, then epoch 3 follows.
    resumed = batches(source.stream(2, first_batch=2), take=len(first) - 2 + 1)
    assert all(same(a, b) for a, b in zip(first[2:], resumed))
    assert same(resumed[-1], batches(source.epoch(3), take=1)[0])
    # Another epoch is another order (or other draws).
    assert not all(same(a, b) for a, b in zip(first, batches(source.epoch(1))))


def test_a_rebuilt_pipeline_with_the_same_seed_has_the_same_epochs(texts, images):
    a, b = sources(texts, images), sources(texts, images)
    for name in ("text", "packed", "images"):
        epoch_a = batches(pl.epochs.source_of(a[name]).epoch(1))
        epoch_b = batches(pl.epochs.source_of(b[name]).epoch(1))
        assert all(same(x, y) for x, y in zip(epoch_a, epoch_b)), name


def test_without_a_seed_each_pipeline_draws_its_own(images):
    seeds = {pl.epochs.source_of(pl.data.image_dataset(*images, batch_size=8)).seed
             for _ in range(4)}
    assert len(seeds) > 1  # fresh randomness, as before
    keras.utils.set_random_seed(5)
    first = pl.epochs.source_of(pl.data.image_dataset(*images, batch_size=8)).seed
    keras.utils.set_random_seed(5)
    assert pl.epochs.source_of(pl.data.image_dataset(*images, batch_size=8)).seed == first


def test_augmentation_is_fresh_every_epoch_and_replays(images):
    dataset = pl.data.image_dataset(images[0], batch_size=8, shuffle=False, seed=0,
                                    augment=keras.layers.RandomTranslation(0.3, 0.3))
    source = pl.epochs.source_of(dataset)
    assert source.draws
    epoch_0, epoch_1 = batches(source.epoch(0)), batches(source.epoch(1))
    assert not same(epoch_0[0], epoch_1[0])  # same images, new transforms
    assert all(same(a, b) for a, b in zip(epoch_0, batches(source.epoch(0))))
    plain = pl.data.image_dataset(images[0], batch_size=8, shuffle=False, seed=0)
    assert not pl.epochs.source_of(plain).draws


def test_a_dataset_of_your_own_is_not_a_source():
    assert pl.epochs.source_of(tf.data.Dataset.range(4).batch(2)) is None
    assert pl.epochs.source_of([1, 2]) is None


def fine_tuner(dropout=0.3):
    keras.utils.set_random_seed(0)
    ft = pl.FineTuner(pl.backbones.ConvNet(widths=(4, 8), blocks_per_stage=1),
                      pl.heads.Classifier(10, dropout=dropout),
                      policy=pl.freezing.FreezeThenUnfreeze(1))
    ft.compile(learning_rate=3e-3)
    return ft


def weights(model):
    return [v.numpy() for v in model.weights]


@pytest.mark.slow
def test_iterators_made_before_fit_change_nothing_it_learns(images):
    # Read the data first (as a user peeking at a batch does): same weights.
    runs = []
    for peeks in (0, 3):
        data = pl.data.image_dataset(*images, batch_size=8, seed=1)
        for _ in range(peeks):
            next(iter(data))
        ft = fine_tuner()
        ft.fit(data, epochs=2, verbose=0)
        runs.append(weights(ft))
    assert max(float(np.abs(a - b).max()) for a, b in zip(*runs)) == 0.0


@pytest.mark.slow
def test_arrays_train_the_same_with_or_without_a_checkpoint(images, tmp_path):
    runs = []
    for callbacks in ([], [pl.training.Checkpoint(tmp_path, every_steps=2)]):
        ft = fine_tuner()
        ft.fit(*images, batch_size=8, epochs=2, verbose=0, callbacks=callbacks)
        runs.append(weights(ft))
    assert max(float(np.abs(a - b).max()) for a, b in zip(*runs)) == 0.0


def test_a_resume_reads_the_seed_its_checkpoint_recorded(images, tmp_path):
    # Arrays draw their seed at every fit: a resumed fit reads the first one's order.
    ft = fine_tuner()
    ft.fit(*images, batch_size=8, epochs=1, verbose=0,
           callbacks=[pl.training.Checkpoint(tmp_path, every_steps=2)])
    saver = pl.training.Checkpoint(tmp_path)
    recorded = saver.read_state(saver.latest())["data_seed"]
    assert isinstance(recorded, int)
    explicit = pl.data.image_dataset(*images, batch_size=8, seed=recorded + 1)
    with pytest.raises(ValueError, match=f"built with seed={recorded + 1}.*with "
                                         f"seed={recorded}: resume with the same seed"):
        fine_tuner().fit(explicit, epochs=2, verbose=0,
                         callbacks=[pl.training.Checkpoint(tmp_path)])


def test_steps_per_execution_that_does_not_divide_the_epoch_still_trains(images):
    ft = fine_tuner()
    ft.compile(learning_rate=1e-3, steps_per_execution=2)  # 5 batches per epoch
    history = ft.fit(pl.data.image_dataset(*images, batch_size=8, seed=0), epochs=2,
                     verbose=0)
    assert int(ft.optimizer.iterations.numpy()) == 10 and len(history.epoch) == 2


def test_cached_features_train_on_the_batches_the_backbone_would_see(images):
    # A linear probe on cached features reads every epoch's batches in the order the
    # uncached run reads them: the same head, up to float rounding.
    runs = []
    for cache in (False, True):
        keras.utils.set_random_seed(0)
        ft = pl.FineTuner(pl.backbones.ConvNet(widths=(4, 8), blocks_per_stage=1),
                          pl.heads.Classifier(10, dropout=0.3),
                          policy=pl.freezing.FeatureExtraction())
        ft.compile(learning_rate=3e-3)
        ft.fit(pl.data.image_dataset(*images, batch_size=8, seed=1), epochs=2, verbose=0,
               cache_features=cache)
        assert ft.fit_on_cached_features is cache
        runs.append([v.numpy() for v in ft.head.weights])
    assert max(float(np.abs(a - b).max()) for a, b in zip(*runs)) <= 1e-5


def test_epochs_shorter_than_the_data_read_on_through_its_orders(images, tmp_path):
    # steps_per_epoch=3 of a 5-batch pipeline: the run reads the source's epochs
    # end to end, the same with or without a checkpoint.
    runs = []
    for callbacks in ([], [pl.training.Checkpoint(tmp_path, every_steps=2)]):
        ft = fine_tuner()
        ft.fit(pl.data.image_dataset(*images, batch_size=8, seed=2), epochs=3,
               steps_per_epoch=3, verbose=0, callbacks=callbacks)
        assert int(ft.optimizer.iterations.numpy()) == 9
        runs.append(weights(ft))
    assert max(float(np.abs(a - b).max()) for a, b in zip(*runs)) == 0.0


def test_seeded_layers_outside_a_batch_seed_say_where_they_belong():
    from pretrainlib import randomness
    flip = keras.layers.RandomFlip()
    with pytest.raises(RuntimeError, match=r"layers_seeded\(\) must run inside "
                                           r"batch_seed"):
        with randomness.layers_seeded([flip]):
            flip(tf.zeros([1, 4, 4, 1]), training=True)
    flip(tf.zeros([1, 4, 4, 1]), training=True)  # its own generator is back
