"""The parts import only what the architecture page says they know about: an
objective never imports the FineTuner, a head never imports a backbone, the freezing
package never imports the training core, the Evaluator needs only a Keras model."""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "pretrainlib"
# Modules every part may use: they import no other part.
LEAVES = {"validation", "protocol", "formatting", "keras_compat", "losses", "metrics",
          "randomness", "epochs", "onnx_compat"}
ALLOWED = {
    "backbones": set(),
    "heads": set(),
    "objectives": {"backbones", "heads", "data"},  # two-view objectives augment as pl.data
    "freezing": {"backbones"},
    "datasets": set(),
    "data": {"datasets"},
    "text": {"data"},  # a Prompt is a tokenizer with a template
    "hub": {"backbones", "serving"},
    "serving": set(),  # any Keras model, its preprocessor read by duck type
    "compress": {"evaluation", "freezing"},  # adapters stay in float; measure evaluates
    "evaluation": {"backbones"},  # the probes read pooled features as objectives do
    "distribute": set(),
    # copies of a compiled model, trained with its settings; a policy comparison scores
    # each chosen model with the Evaluator
    "tune": {"evaluation", "freezing", "training"},
    "training": {"backbones"},  # reads a backbone's inputs to check data against them
    "pretrainer": {"objectives", "training"},
    "semi": {"data", "training"},
    "generation": {"backbones"},  # decodes with a causal backbone's own layers  # scales images as pl.data does; runs in the core
    "finetuner": {"backbones", "data", "freezing", "heads", "semi", "training"},
}


def imported_parts(path: pathlib.Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pretrainlib"):
            parts = node.module.split(".")
            found |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names
                      if a.name.startswith("pretrainlib.")}
    return found


def test_every_part_imports_only_what_it_knows_about():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).with_suffix("")
        part = relative.parts[0]
        if part == "__init__" or part in LEAVES:
            allowed = None if part == "__init__" else LEAVES
        else:
            assert part in ALLOWED, f"{part}: add it to ALLOWED (and to docs/architecture.md)"
            allowed = ALLOWED[part] | LEAVES
        if allowed is None:
            continue
        for other in imported_parts(path) - {part} - allowed:
            wrong.append(f"{relative} imports {other}")
    assert not wrong, "imports against the architecture:\n" + "\n".join(wrong)


def test_leaf_modules_import_no_part():
    for leaf in LEAVES:
        others = imported_parts(PACKAGE / f"{leaf}.py") - LEAVES - {leaf}
        assert not others, f"{leaf} imports {others}"
