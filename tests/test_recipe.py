"""The recipe users copy first: the README's and the documentation site's are the
same code, it keeps the warm start, and it runs (at a small scale, through the same
calls)."""

import dataclasses
import pathlib
import re

import keras

import pretrainlib as pl

ROOT = pathlib.Path(__file__).resolve().parents[1]


def recipe(page: str) -> str:
    """The first Python code block of a page."""
    found = re.search(r"```python\n(.*?)```", (ROOT / page).read_text(), re.S)
    assert found, f"{page} has no Python code block"
    return found.group(1)


def test_the_site_and_the_readme_show_the_same_recipe():
    readme, site = recipe("README.md"), recipe("docs/index.md")
    assert readme == site, "docs/index.md's first code block differs from the README's"
    template = recipe("docs/templates/README.md")
    assert template == readme


def test_the_recipe_keeps_the_warm_start():
    # Without co-occurrence embeddings, the recipe's masked LM fine-tunes below scratch
    # (docs/results.md, the ablation): the quickstart must not drop them.
    code = recipe("README.md")
    assert "pl.text.init_token_embeddings(backbone, wn.unlabeled, tok)" in code
    assert code.index("init_token_embeddings") < code.index("pre.fit(")


# The recipe's sizes, scaled down so that it runs in seconds; everything else as written.
SMALL = {"vocab_size=8000": "vocab_size=400",
         "num_layers=2, hidden_dim=128": "num_layers=1, hidden_dim=32",
         "epochs=10": "epochs=4"}


def test_the_recipe_runs_and_learns_at_a_small_scale(tmp_path, monkeypatch):
    code = recipe("README.md")
    for old, new in SMALL.items():
        assert old in code, f"the recipe no longer says {old!r}: update SMALL"
        code = code.replace(old, new)
    full = pl.datasets.wordnet_supersenses()
    small = dataclasses.replace(full, unlabeled=full.unlabeled[:4000],
                                test=full.test.sample(300, seed=0))
    monkeypatch.setattr(pl.datasets, "wordnet_supersenses", lambda: small)
    monkeypatch.chdir(tmp_path)
    keras.utils.set_random_seed(0)
    namespace: dict = {}
    exec(compile(code, "README.md recipe", "exec"), namespace)
    losses = namespace["history"].history["loss"]
    assert losses[-1] < losses[0], losses
    report = namespace["report"]
    assert 1 / 6 < report.metrics["accuracy"] <= 1  # above chance on six classes
    assert (tmp_path / "report.png").stat().st_size > 10_000
