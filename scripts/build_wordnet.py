"""Build the bundled WordNet gloss corpus shipped in `pretrainlib/datasets/data/`.

Downloads Debian's `wordnet-base` package (Princeton WordNet 3.0, WordNet licence),
parses its `data.{noun,verb,adj,adv}` files and writes one gzipped TSV with a row per
synset:

    pos  lexname  split  lemmas  definition  examples

`split` is `train` / `validation` / `test` for nouns of the six supersenses used by
`pl.datasets.wordnet_supersenses()` and empty for every other synset. The split is
stratified by supersense and seeded (seed 1234): 10% test, 10% validation, 80% train.

Run it (as root, or anywhere `apt-get download` works) from the repository root:

    python scripts/build_wordnet.py

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

LABELED_SUPERSENSES = ("animal", "artifact", "food", "location", "person", "plant")
# Lexicographer file numbers from WordNet's lexnames(5WN).
LEXNAMES = {
    0: "adj.all", 1: "adj.pert", 2: "adv.all", 3: "noun.Tops", 4: "noun.act",
    5: "noun.animal", 6: "noun.artifact", 7: "noun.attribute", 8: "noun.body",
    9: "noun.cognition", 10: "noun.communication", 11: "noun.event", 12: "noun.feeling",
    13: "noun.food", 14: "noun.group", 15: "noun.location", 16: "noun.motive",
    17: "noun.object", 18: "noun.person", 19: "noun.phenomenon", 20: "noun.plant",
    21: "noun.possession", 22: "noun.process", 23: "noun.quantity", 24: "noun.relation",
    25: "noun.shape", 26: "noun.state", 27: "noun.substance", 28: "noun.time",
    29: "verb.body", 30: "verb.change", 31: "verb.cognition", 32: "verb.communication",
    33: "verb.competition", 34: "verb.consumption", 35: "verb.contact", 36: "verb.creation",
    37: "verb.emotion", 38: "verb.motion", 39: "verb.perception", 40: "verb.possession",
    41: "verb.social", 42: "verb.stative", 43: "verb.weather", 44: "adj.ppl",
}
SEED = 1234
OUT_DIR = pathlib.Path(__file__).resolve().parents[1] / "pretrainlib" / "datasets" / "data"


def split_gloss(gloss: str) -> tuple[str, str]:
    """Splits a WordNet gloss into its definition and its quoted usage examples."""
    parts = [p.strip() for p in gloss.split(";")]
    definition = [p for p in parts if p and not p.startswith('"')]
    examples = [p.strip('"') for p in parts if p.startswith('"')]
    return "; ".join(definition), " | ".join(examples)


def parse_data_file(path: pathlib.Path):
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.startswith("  "):  # licence header
            continue
        head, _, gloss = line.partition(" | ")
        fields = head.split()
        lex_filenum, pos = int(fields[1]), fields[2]
        word_count = int(fields[3], 16)
        lemmas = [fields[4 + 2 * i].replace("_", " ") for i in range(word_count)]
        definition, examples = split_gloss(gloss.strip())
        yield pos, LEXNAMES[lex_filenum], lemmas, definition, examples


def clean(text: str) -> str:
    return text.replace("\t", " ").replace("\n", " ").strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deb", help="an already downloaded wordnet-base .deb")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        deb = pathlib.Path(args.deb) if args.deb else None
        if deb is None:
            subprocess.run(["apt-get", "download", "wordnet-base"], cwd=tmp, check=True)
            deb = next(tmp.glob("wordnet-base_*.deb"))
        subprocess.run(["dpkg", "-x", str(deb), str(tmp / "root")], check=True)
        wn_dir = tmp / "root" / "usr" / "share" / "wordnet"
        rows = []
        for pos_file in ("noun", "verb", "adj", "adv"):
            rows.extend(parse_data_file(wn_dir / f"data.{pos_file}"))
        licence = tmp / "root" / "usr" / "share" / "doc" / "wordnet-base" / "copyright"
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(licence, OUT_DIR / "LICENSE.wordnet")

    rng = random.Random(SEED)
    splits = [""] * len(rows)
    for supersense in LABELED_SUPERSENSES:
        index = [i for i, r in enumerate(rows) if r[1] == f"noun.{supersense}" and r[3]]
        rng.shuffle(index)
        n_test = n_val = len(index) // 10
        for rank, i in enumerate(index):
            splits[i] = "test" if rank < n_test else "validation" if rank < n_test + n_val else "train"

    out = OUT_DIR / "wordnet_glosses.tsv.gz"
    with gzip.open(out, "wt", encoding="utf-8", compresslevel=9) as f:
        f.write("pos\tlexname\tsplit\tlemmas\tdefinition\texamples\n")
        for (pos, lexname, lemmas, definition, examples), split in zip(rows, splits):
            f.write("\t".join([pos, lexname, split, clean("|".join(lemmas)),
                               clean(definition), clean(examples)]) + "\n")
    counts = {s: splits.count(s) for s in ("train", "validation", "test")}
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): {len(rows)} synsets, {counts}")


if __name__ == "__main__":
    main()
