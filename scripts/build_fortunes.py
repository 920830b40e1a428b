"""Build the bundled fortune-cookie corpus shipped in `pretrainlib/datasets/data/`.

Downloads Debian's `fortunes` and `fortunes-min` packages (the fortune-mod data
files, BSD licence; the offensive files are a separate package and are not used),
splits every file into its fortunes (`%` lines separate them) and writes one gzipped
TSV with a row per fortune:

    topic  split  text

`topic` is the fortune file's name. `split` is `train` / `validation` / `test` for the
topics of `pl.datasets.fortune_topics()` and empty for every other file, whose
fortunes are unlabeled text. The split is stratified by topic and seeded (seed 1234):
10% test, 10% validation, 80% train. A fortune's lines are joined by single spaces.

Run it (as root, or anywhere `apt-get download` works) from the repository root:

    python scripts/build_fortunes.py

The library only ever reads the built file; it never downloads anything.
"""

from __future__ import annotations

import argparse
import gzip
import pathlib
import random
import shutil
import subprocess
import tempfile

LABELED_TOPICS = ("computers", "definitions", "men-women", "politics", "science",
                  "songs-poems", "work")
PACKAGES = ("fortunes", "fortunes-min")
SEED = 1234
OUT_DIR = pathlib.Path(__file__).resolve().parents[1] / "pretrainlib" / "datasets" / "data"


def fortunes(path: pathlib.Path) -> list[str]:
    """The fortunes of one file, each on one line."""
    text = path.read_text(encoding="utf-8", errors="replace")
    entries = []
    for entry in text.split("\n%\n"):
        entry = " ".join(entry.replace("\t", " ").split())
        if entry and entry != "%":
            entries.append(entry)
    return entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debs", nargs="*", help="already downloaded .deb files")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        debs = [pathlib.Path(d) for d in args.debs or []]
        if not debs:
            subprocess.run(["apt-get", "download", *PACKAGES], cwd=tmp, check=True)
            debs = sorted(tmp.glob("fortunes*.deb"))
        for deb in debs:
            subprocess.run(["dpkg", "-x", str(deb), str(tmp / "root")], check=True)
        folder = tmp / "root" / "usr" / "share" / "games" / "fortunes"
        rows = []
        for path in sorted(folder.iterdir()):
            if path.is_file() and not path.is_symlink() and path.suffix not in (".dat", ".u8"):
                rows.extend((path.name, text) for text in fortunes(path))
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp / "root" / "usr" / "share" / "doc" / "fortunes" / "copyright",
                        OUT_DIR / "LICENSE.fortunes")

    rng = random.Random(SEED)
    splits = [""] * len(rows)
    for topic in LABELED_TOPICS:
        index = [i for i, (name, _) in enumerate(rows) if name == topic]
        rng.shuffle(index)
        n_test = n_val = len(index) // 10
        for rank, i in enumerate(index):
            splits[i] = ("test" if rank < n_test else
                         "validation" if rank < n_test + n_val else "train")

    out = OUT_DIR / "fortunes.tsv.gz"
    with gzip.open(out, "wt", encoding="utf-8", compresslevel=9) as f:
        f.write("topic\tsplit\ttext\n")
        for (topic, text), split in zip(rows, splits):
            f.write(f"{topic}\t{split}\t{text}\n")
    counts = {s: splits.count(s) for s in ("train", "validation", "test")}
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): {len(rows)} fortunes, {counts}")


if __name__ == "__main__":
    main()
