"""Images from folders: class sub-folders (or none), decoded in tf.data per batch.

The folder is listed once and every file's header read (format, size, channels,
and the end marker that a truncated PNG or JPEG lacks), so a bad file fails before
any step, named. Epochs are `pl.epochs.Examples` over the file paths: a keyed
order per (seed, epoch), any batch built directly on a resume, decoding, resizing,
scaling and augmentation inside tf.data, per batch.
"""

from __future__ import annotations

import os
import struct

import numpy as np
import tensorflow as tf

from pretrainlib import epochs, validation
from pretrainlib.data import labels as label_names
from pretrainlib.data.image import check_augment, check_preprocessor, preparer

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def image_folder(
    path,
    labels: str | None = "inferred",
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
    batch_size: int = 32,
    augment=None,
    shuffle: bool = True,
    seed: int | None = None,
    preprocessor=None,
    class_names=None,
) -> tf.data.Dataset:
    """Builds a batched `tf.data.Dataset` of the images in a folder.

    With `labels="inferred"` (as `keras.utils.image_dataset_from_directory`) each
    sub-folder of `path` is a class, named after it, in sorted order (or in the
    order of `class_names`); the dataset yields `(images, labels)` and its
    `class_names` names them. With `labels=None` every image under `path` (sub-
    folders included) is read, unlabeled (for pretraining). Images (PNG, JPEG, BMP,
    GIF) are decoded, resized to `image_size` if given (bilinear, as Keras) and
    scaled as `pl.data.image_dataset` scales them: [0, 1] by default, the
    backbone's own way with `preprocessor=pl.data.ImagePreprocessor.for_backbone(
    backbone)`. Each epoch is reshuffled in an order that is a function of `seed`
    and the epoch alone, and `augment` draws from the batch's place in it, so a
    resumed run reads exactly the batches the uninterrupted one would.

    Args:
        path: the folder.
        labels: `"inferred"` (from sub-folders) or None.
        image_size: `(height, width)` to resize to; default: the images' own size,
            which must then be the same for all.
        channels: 1 (grayscale) or 3 (RGB) to convert every image to; default: the
            images' own, which must then be the same for all.
        batch_size: images per batch.
        augment: a Keras layer or a list of them (run per batch, `training=True`).
        shuffle: reshuffle every epoch.
        seed: seed for shuffling and augmentation.
        preprocessor: a `pl.data.ImagePreprocessor`: how pixels 0-255 become the
            backbone's inputs (default: / 255).
        class_names: with `labels="inferred"`, the sub-folders to read, in id order.

    Examples:
        >>> import pathlib, tempfile
        >>> import numpy as np, tensorflow as tf, pretrainlib as pl
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> for name in ("cat", "dog"):
        ...     (root / name).mkdir()
        ...     for i in range(3):
        ...         png = tf.io.encode_png(np.full((8, 8, 1), 40 * i, np.uint8))
        ...         _ = (root / name / f"{i}.png").write_bytes(png.numpy())
        >>> ds = pl.data.image_folder(root, batch_size=4, seed=0)
        >>> x, y = next(iter(ds))
        >>> x.shape, ds.class_names
        (TensorShape([4, 8, 8, 1]), ['cat', 'dog'])
    """
    validation.one_of("labels", labels, ("inferred", None))
    validation.positive_int("batch_size", batch_size)
    if channels is not None:
        validation.one_of("channels", channels, (1, 3))
    if image_size is not None:
        image_size = _size(image_size)
    layers = check_augment(augment)
    check_preprocessor(preprocessor)
    root = os.fspath(path)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"`path` must be a folder. Received: path={root!r}")
    if labels == "inferred":
        paths, ids, names = _by_class(root, class_names)
    else:
        if class_names is not None:
            raise ValueError("`class_names` picks class sub-folders; it needs "
                             "labels='inferred'.")
        paths, ids, names = _images_under(root), None, None
        if not paths:
            raise FileNotFoundError(f"{root!r} holds no image ({', '.join(SUFFIXES)}).")
    headers = [_header(p) for p in paths]
    height, width, depth = _common(paths, headers, image_size, channels)

    def load(batch_paths):
        def decode(p):
            image = tf.io.decode_image(tf.io.read_file(p), channels=depth,
                                       expand_animations=False)
            if image_size is not None:
                image = tf.image.resize(image, (height, width))
            return tf.cast(image, "float32")

        return tf.map_fn(decode, batch_paths, fn_output_signature=tf.TensorSpec(
            [height, width, depth], "float32"))

    columns = (tf.constant(paths),) + (() if ids is None else (ids,))
    prepare = preparer(layers, 1 / 255, preprocessor, ids is not None, load=load)
    dataset = epochs.Examples(columns, batch_size, shuffle=shuffle, seed=seed,
                              prepare=prepare, draws=bool(layers)).dataset()
    dataset.class_names = names
    dataset.file_paths = paths  # as Keras's image_dataset_from_directory
    return dataset


def _size(image_size):
    if (not isinstance(image_size, (tuple, list)) or len(image_size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                       for v in image_size)):
        raise ValueError("`image_size` must be (height, width), two positive ints. "
                         f"Received: image_size={image_size!r}")
    return tuple(image_size)


def _images_under(folder):
    return sorted(os.path.join(r, n) for r, _, names in os.walk(folder) for n in names
                  if os.path.splitext(n)[1].lower() in SUFFIXES)


def _by_class(root, class_names):
    folders = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    if not folders:
        raise FileNotFoundError(
            f"{root!r} has no sub-folders: with labels='inferred' each class is a "
            "sub-folder of images. For unlabeled images pass labels=None.")
    names = label_names.vocabulary("class_names", folders, class_names)
    missing = [n for n in names if n not in folders]
    if missing:
        raise FileNotFoundError(f"`class_names` names {missing}, which are not sub-folders "
                                f"of {root!r} (it has {folders}).")
    paths, ids = [], []
    for i, name in enumerate(names):
        found = _images_under(os.path.join(root, name))
        if not found:
            raise FileNotFoundError(f"The class folder {os.path.join(root, name)!r} holds no "
                                    f"image ({', '.join(SUFFIXES)}).")
        paths += found
        ids += [i] * len(found)
    return paths, np.array(ids, "int32"), names


def _common(paths, headers, image_size, channels):
    """The (height, width, channels) every image comes out with."""
    if channels is None:
        depths = _first_path_of(paths, [c for _, _, c in headers])
        if len(depths) > 1:
            (a, pa), (b, pb) = list(depths.items())[:2]
            raise ValueError(f"The images mix channels: {pa} has {a}, {pb} has {b}. Pass "
                             "channels=1 or channels=3 to convert them all.")
        channels = next(iter(depths))
        channels = 3 if channels == 4 else channels  # RGBA read as RGB
    if image_size is not None:
        return (*image_size, channels)
    sizes = _first_path_of(paths, [(h, w) for h, w, _ in headers])
    if len(sizes) > 1:
        (a, pa), (b, pb) = list(sizes.items())[:2]
        raise ValueError(f"The images differ in size: {pa} is {a[0]}x{a[1]}, {pb} is "
                         f"{b[0]}x{b[1]}. Pass image_size=(height, width) to resize them.")
    return (*next(iter(sizes)), channels)


def _first_path_of(paths, values) -> dict:
    """Each distinct value, with the first path that has it."""
    first = {}
    for path, value in zip(paths, values):
        first.setdefault(value, path)
    return first


def _header(path):
    """(height, width, channels) from the file's header; an error for a file that is
    not an image or is cut short."""
    with open(path, "rb") as f:
        head = f.read(64 * 1024)
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 12))
        tail = f.read(12)
    try:
        if head.startswith(b"\x89PNG\r\n\x1a\n"):
            width, height, depth, color = struct.unpack(">IIBB", head[16:26])
            if tail[4:8] != b"IEND":
                raise ValueError("truncated (no IEND chunk at the end)")
            return height, width, {0: 1, 2: 3, 3: 3, 4: 1, 6: 3}[color]
        if head.startswith(b"\xff\xd8"):
            if not tail.endswith(b"\xff\xd9"):
                raise ValueError("truncated (no end-of-image marker)")
            return _jpeg_header(head)
        if head.startswith(b"BM") or head[:6] in (b"GIF87a", b"GIF89a"):
            image = tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
            return tuple(int(d) for d in image.shape)
    except (ValueError, KeyError, struct.error, tf.errors.InvalidArgumentError) as error:
        raise ValueError(f"{path}: cannot be read as an image ({error}).") from None
    raise ValueError(f"{path}: not a PNG, JPEG, BMP or GIF image (its first bytes are "
                     f"{head[:8]!r}).")


def _jpeg_header(data):
    position = 2
    while position + 9 < len(data):
        if data[position] != 0xFF:
            raise ValueError("a JPEG marker is missing")
        marker = data[position + 1]
        (length,) = struct.unpack(">H", data[position + 2:position + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            height, width = struct.unpack(">HH", data[position + 5:position + 9])
            return height, width, data[position + 9]
        position += 2 + length
    raise ValueError("no JPEG frame header in its first 64 KB")
