"""Build the bundled Fashion-MNIST subset shipped in `pretrainlib/datasets/data/`.

Downloads Debian's `dataset-fashion-mnist` package (Zalando Research, MIT licence),
reads its IDX files and writes one compressed `.npz` of uint8 images and labels:

    train_images  [18000, 28, 28]   train_labels       1,800 per class
    val_images    [2000, 28, 28]    val_labels           200 per class
    test_images   [5000, 28, 28]    test_labels          500 per class

Why a subset: the full 70,000 images take 31 MB compressed; 25,000 take 11 MB,
enough for pretraining on 18,000 unlabeled images and a test set whose accuracy has
a standard error under 0.007. The first 2,000 training-file images of each class
are kept, in file order, and 200 of each are set aside (seeded, seed 1234) for
validation; the test set is the first 500 test-file images of each class.

Run it (as root, or anywhere `apt-get download` works) from the repository root:

    python scripts/build_fashion_mnist.py

The library only ever reads the built file; it never downloads anything.
"""

from __future__ import annotations

import argparse
import gzip
import pathlib
import shutil
import subprocess
import tempfile

import numpy as np

SEED = 1234
TRAIN_PER_CLASS, VAL_PER_CLASS, TEST_PER_CLASS = 2000, 200, 500
OUT_DIR = pathlib.Path(__file__).resolve().parents[1] / "pretrainlib" / "datasets" / "data"
PACKAGE_DIR = "usr/share/datasets/fashion-mnist"


def read_idx(path: pathlib.Path) -> np.ndarray:
    """Reads a gzipped IDX file (images: 16-byte header, labels: 8-byte header)."""
    data = gzip.open(path).read()
    if "images" in path.name:
        return np.frombuffer(data, np.uint8, offset=16).reshape(-1, 28, 28)
    return np.frombuffer(data, np.uint8, offset=8)


def first_per_class(labels: np.ndarray, per_class: int) -> np.ndarray:
    """Indices of the first `per_class` examples of each class, in file order."""
    keep = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)])
    return np.sort(keep)


def build(source: pathlib.Path, out_dir: pathlib.Path) -> pathlib.Path:
    train_x = read_idx(source / "train-images-idx3-ubyte.gz")
    train_y = read_idx(source / "train-labels-idx1-ubyte.gz")
    test_x = read_idx(source / "t10k-images-idx3-ubyte.gz")
    test_y = read_idx(source / "t10k-labels-idx1-ubyte.gz")
    pool = first_per_class(train_y, TRAIN_PER_CLASS)
    rng = np.random.default_rng(SEED)
    val = np.sort(np.concatenate([
        rng.choice(pool[train_y[pool] == c], VAL_PER_CLASS, replace=False) for c in range(10)
    ]))
    train = np.setdiff1d(pool, val)
    test = first_per_class(test_y, TEST_PER_CLASS)
    out = out_dir / "fashion_mnist_subset.npz"
    np.savez_compressed(
        out,
        train_images=train_x[train], train_labels=train_y[train],
        val_images=train_x[val], val_labels=train_y[val],
        test_images=test_x[test], test_labels=test_y[test],
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package-dir", type=pathlib.Path, default=None,
                        help="an already extracted dataset-fashion-mnist package")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.package_dir
        if root is None:
            subprocess.run(["apt-get", "download", "dataset-fashion-mnist"], cwd=tmp, check=True)
            deb = next(pathlib.Path(tmp).glob("dataset-fashion-mnist_*.deb"))
            root = pathlib.Path(tmp) / "root"
            subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
        out = build(root / PACKAGE_DIR, OUT_DIR)
        shutil.copy(root / "usr/share/doc/dataset-fashion-mnist/copyright",
                    OUT_DIR / "LICENSE.fashion_mnist")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
