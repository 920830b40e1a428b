"""What `fit`, `evaluate` and `predict` accept, as tf.data, checked before any step.

Keras models take numpy arrays, dicts and lists of arrays, `y=`, `sample_weight=`,
`validation_split=` and datasets; so do ours. Arrays become a `tf.data.Dataset` here
(rather than in Keras's adapters) because the training core reads one stream of
batches for checkpointed runs and the FineTuner checks labels and input shapes on
a dataset before the first step.
"""

from __future__ import annotations

import weakref

import keras
import numpy as np
import tensorflow as tf

from pretrainlib import epochs, validation
from pretrainlib.backbones.outputs import model_input

DEFAULT_BATCH_SIZE = 32  # as Keras's
_LARGEST_LABEL = weakref.WeakKeyDictionary()  # dataset -> its largest class label


def as_dataset(name: str, x, y=None, sample_weight=None, batch_size: int | None = None,
               shuffle: bool = True, preprocessor=None) -> tf.data.Dataset:
    """`x` (and `y`, `sample_weight`) as a batched dataset.

    A `tf.data.Dataset` is returned as it is (it must yield its own labels). Raw
    inputs that `preprocessor` takes (texts for a `pl.text.TextPreprocessor`) go
    through it; other arrays, dicts or lists of arrays are sliced along their first
    axis, reshuffled every epoch when `shuffle` (in an order keyed by a seed drawn
    from Python's `random` and the epoch, see `pl.epochs`), and batched by
    `batch_size` (default 32).

    Examples:
        >>> import numpy as np
        >>> from pretrainlib.training.inputs import as_dataset
        >>> ds = as_dataset("x", np.zeros((10, 3)), np.arange(10), batch_size=4,
        ...                 shuffle=False)
        >>> [int(y.shape[0]) for _, y in ds]
        [4, 4, 2]
    """
    if isinstance(x, tf.data.Dataset):
        for arg, value in (("y", y), ("sample_weight", sample_weight),
                           ("batch_size", batch_size)):
            if value is not None:
                raise ValueError(
                    f"`{arg}` must be None when `{name}` is a tf.data.Dataset: the dataset "
                    f"yields its own batches (inputs, labels[, sample weights]). Received: "
                    f"{arg} of type {type(value).__name__}")
        return x
    if x is None:
        raise ValueError(f"`{name}` is required: pass a tf.data.Dataset, or arrays with `y`.")
    if batch_size is not None:
        validation.positive_int("batch_size", batch_size)
    batch_size = batch_size or DEFAULT_BATCH_SIZE
    if preprocessor is not None and preprocessor.takes(x):
        return preprocessor.dataset(x, y, sample_weight=sample_weight, batch_size=batch_size,
                                    shuffle=shuffle)
    columns = [_arrays(name, x)]
    for arg, value in (("y", y), ("sample_weight", sample_weight)):
        if value is not None:
            columns.append(_arrays(arg, value))
    _same_length([name, "y", "sample_weight"], columns)
    return epochs.Examples(tuple(columns), batch_size, shuffle=shuffle).dataset()


def fit_datasets(x, y, sample_weight, batch_size, shuffle, validation_split,
                 validation_data, preprocessor=None):
    """`(x, validation_data)` as datasets, from what `keras.Model.fit` takes:
    `validation_split` of arrays, `validation_data` as a dataset or a tuple
    `(x, y[, sample_weight])`."""
    if validation_split:
        if validation_data is not None:
            raise ValueError("Pass `validation_split` or `validation_data`, not both.")
        (x, y, sample_weight), validation_data = split_validation(
            x, y, sample_weight, validation_split)
    x = as_dataset("x", x, y, sample_weight, batch_size, shuffle, preprocessor)
    if isinstance(validation_data, (tuple, list)):
        validation_data = as_dataset("validation_data", *validation_data,
                                     batch_size=batch_size, shuffle=False,
                                     preprocessor=preprocessor)
    elif validation_data is not None:
        validation_data = as_dataset("validation_data", validation_data)
    return x, validation_data


def split_validation(x, y, sample_weight, validation_split: float):
    """Keras's `validation_split`: the last fraction of the arrays (before any
    shuffling) becomes `validation_data`. Returns `(train, validation)`, each
    `(x, y, sample_weight)`."""
    if isinstance(x, tf.data.Dataset):
        raise ValueError("`validation_split` needs arrays; with a tf.data.Dataset pass "
                         "`validation_data` instead.")
    validation.open_unit_interval("validation_split", validation_split)
    length = len(tf.nest.flatten(_arrays("x", x))[0])
    cut = int(length * (1 - validation_split))
    if not 0 < cut < length:
        raise ValueError(f"`validation_split={validation_split}` of {length} examples leaves "
                         "one side empty; pass more data or another split.")

    def part(name, value, piece):
        if value is None:
            return None
        return tf.nest.map_structure(lambda a: a[piece], _arrays(name, value))

    named = (("x", x), ("y", y), ("sample_weight", sample_weight))
    return tuple(tuple(part(name, value, piece) for name, value in named)
                 for piece in (slice(None, cut), slice(cut, None)))


def _arrays(name: str, value):
    """`value` as a nest of numpy arrays (lists of strings stay strings)."""
    if isinstance(value, dict):
        return {key: np.asarray(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(v, (np.ndarray, tf.Tensor)) for v in value):
        return tuple(np.asarray(v) for v in value)
    array = np.asarray(value)
    if array.dtype == object:
        raise TypeError(f"`{name}` must be arrays, a dict of arrays or a tf.data.Dataset. "
                        f"Received: {name} of type {type(value).__name__} holding objects")
    return array


def _same_length(names, columns) -> None:
    lengths = {n: {len(a) for a in tf.nest.flatten(c)} for n, c in zip(names, columns)}
    flat = {n: sizes for n, sizes in lengths.items() if sizes}
    if any(len(sizes) > 1 for sizes in flat.values()) or len(
            {s for sizes in flat.values() for s in sizes}) > 1:
        described = ", ".join(f"{n}: {sorted(s)}" for n, s in flat.items())
        raise ValueError(f"The arrays passed must hold the same number of examples. "
                         f"Received lengths {described}")


# === Shapes the backbone takes ===
def check_shapes(name: str, inputs_spec, backbone: keras.Model) -> None:
    """Raises before any step if `inputs_spec` (a dataset's input specs) has rows
    longer than `backbone`'s `max_sequence_length`, or images of another size than
    it was built for, naming both values."""
    wanted = model_input(backbone)
    if isinstance(wanted, dict) != isinstance(inputs_spec, dict):
        described = (sorted(inputs_spec) if isinstance(inputs_spec, dict)
                     else getattr(inputs_spec, "shape", inputs_spec))
        takes = sorted(wanted) if isinstance(wanted, dict) else "one tensor"
        hint = (" Build text data with pl.data.text_dataset (or pass a dict of arrays)."
                if isinstance(wanted, dict) else "")
        raise ValueError(f"`{name}` yields inputs {described}, but backbone "
                         f"{backbone.name!r} takes {takes}.{hint}")
    if isinstance(inputs_spec, dict) and isinstance(wanted, dict):
        given = inputs_spec.get("token_ids")
        limit = getattr(backbone, "max_sequence_length", None)
        length = given.shape[1] if given is not None and given.shape.rank == 2 else None
        if limit and length and length > limit:
            raise ValueError(
                f"`{name}` holds rows of {length} tokens, but backbone {backbone.name!r} "
                f"takes at most max_sequence_length={limit}. Build the data with "
                f"sequence_length={limit} (e.g. pl.data.text_dataset(..., "
                f"sequence_length={limit})), or a backbone with max_sequence_length>="
                f"{length}.")
        return
    shape = getattr(inputs_spec, "shape", None)
    if shape is None or isinstance(wanted, (dict, list, tuple)) or wanted is None:
        return
    expected = tuple(wanted.shape[1:])
    received = tuple(shape[1:])
    if len(expected) == 3 and len(received) == 3 and any(
            e is not None and r is not None and e != r for e, r in zip(expected, received)):
        raise ValueError(
            f"`{name}` holds images of shape {received}, but backbone {backbone.name!r} "
            f"takes {expected}. Resize them (e.g. pl.data.ImagePreprocessor(image_size="
            f"{expected[:2]})) or build the backbone for {received}.")


# === Lengths ===
def dataset_length(name: str, dataset) -> int | None:
    """Batches per epoch of `dataset`, or None if unknown; rejects empty datasets."""
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(
            f"`{name}` must be a tf.data.Dataset (see pl.data.text_dataset). "
            f"Received: {name} of type {type(dataset).__name__}"
        )
    cardinality = int(dataset.cardinality())
    if cardinality == 0:
        raise ValueError(f"`{name}` is an empty dataset; it yields no batch.")
    if cardinality > 0:
        return cardinality
    if cardinality == tf.data.INFINITE_CARDINALITY:
        return None
    for _ in dataset.take(1):
        return None
    raise ValueError(f"`{name}` is an empty dataset; it yields no batch.")


def batches_per_epoch(dataset, steps_per_epoch: int | None) -> int:
    """`steps_per_epoch` if given, else the dataset's length.

    A dataset of unknown length (a stream, a `filter`) is not counted: a pass over
    the data just to count it can take as long as an epoch, so the error asks for
    `steps_per_epoch` (or the dataset's length, with `assert_cardinality`)."""
    if steps_per_epoch is not None:
        return validation.positive_int("steps_per_epoch", steps_per_epoch)
    steps = dataset_length("x", dataset)
    bounded("x", dataset, None, "steps_per_epoch")  # endless: an error
    if steps is None:
        raise ValueError(
            "`x` has no known length (it streams, or was filtered), and counting its "
            "batches would take a pass over it: pass `steps_per_epoch=`, or declare its "
            "length with dataset.apply(tf.data.experimental.assert_cardinality(n)).")
    return steps


def bounded(name: str, dataset: tf.data.Dataset, steps: int | None,
            steps_name: str) -> tf.data.Dataset:
    """`dataset`, or its first `steps` batches if it repeats forever; an endless
    dataset without `steps` is an error naming `steps_name`."""
    if int(dataset.cardinality()) != tf.data.INFINITE_CARDINALITY:
        return dataset
    if steps is None:
        raise ValueError(f"`{name}` repeats forever: pass `{steps_name}` to say how many "
                         "of its batches to use.")
    return dataset.take(steps)


# === Labeled data ===
def check_labeled(name: str, dataset: tf.data.Dataset, steps: int | None, steps_name: str,
                  model_inputs, num_classes: int | None) -> None:
    """Rejects, before any step runs, a dataset without labels, inputs the model does
    not take, and class labels outside `[0, num_classes)` (in the `steps` batches
    used of an endless dataset). `num_classes=None`: real-valued targets."""
    dataset_length(name, dataset)
    dataset = bounded(name, dataset, steps, steps_name)
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) < 2:
        raise ValueError(
            f"`{name}` must yield (inputs, labels) pairs (with arrays, pass the labels as "
            f"`y`). Received element spec: {spec}")
    given, wanted = spec[0], model_inputs
    if isinstance(given, dict) and isinstance(wanted, dict) and set(given) != set(wanted):
        hint = ""
        if "segment_ids" in set(given) - set(wanted):
            hint = " Build the FineTuner with pairs=True for sentence pairs."
        elif "segment_ids" in set(wanted) - set(given):
            hint = (" Pass pairs=... to pl.data.text_dataset, or build the FineTuner "
                    "without pairs=True.")
        raise ValueError(
            f"`{name}` yields inputs {sorted(given)}, but the model takes "
            f"{sorted(wanted)}.{hint}")
    if num_classes is None:
        return
    if getattr(spec[1], "dtype", None) is not None and spec[1].dtype.is_floating:
        raise ValueError(
            f"`{name}` has float labels ({spec[1].dtype.name}), but the head classifies: "
            "pass integer class ids, or use pl.heads.Regressor for real-valued targets.")
    largest = _LARGEST_LABEL.get(dataset)
    source = epochs.source_of(dataset)
    if largest is None and source is not None:
        largest = source.largest_label()  # the labels in memory, or a file index's
        _LARGEST_LABEL[dataset] = largest
    if largest is None:  # one pass over the labels per dataset, not per `fit`
        largest = int(dataset.map(lambda *batch: tf.reduce_max(batch[1])).reduce(
            np.int64(-1), lambda a, b: tf.maximum(a, tf.cast(b, "int64"))))
        _LARGEST_LABEL[dataset] = largest
    if int(largest) >= num_classes:
        raise ValueError(
            f"`{name}` holds label {int(largest)}, but the head has num_classes="
            f"{num_classes}. Build the head with num_classes >= {int(largest) + 1}.")
