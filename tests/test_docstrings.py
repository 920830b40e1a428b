"""Every public docstring example runs: the docs cannot rot."""

import doctest
import importlib
import pkgutil

import pytest

import pretrainlib

MODULES = sorted(
    name for _, name, _ in pkgutil.walk_packages(pretrainlib.__path__, "pretrainlib.")
)
# Modules whose examples train for a while: run by `dev.py test --all`, not the fast tier.
SLOW = {"pretrainlib.tune.search", "pretrainlib.tune.policies", "pretrainlib.semi.methods",
        "pretrainlib.serving", "pretrainlib.tune.lr_finder", "pretrainlib.finetuner",
        "pretrainlib.objectives.masked_autoencoder"}


@pytest.mark.parametrize("name", [pytest.param(m, marks=pytest.mark.slow) if m in SLOW else m
                                  for m in MODULES])
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_every_public_class_has_an_example():
    missing = []
    for name in MODULES:
        module = importlib.import_module(name)
        for attr, obj in vars(module).items():
            if isinstance(obj, type) and obj.__module__ == name and not attr.startswith("_"):
                if ">>>" not in (obj.__doc__ or ""):
                    missing.append(f"{name}.{attr}")
    assert not missing, f"public classes without a runnable example: {missing}"
