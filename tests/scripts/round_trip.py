"""Saves one of every public object type, or reloads them in a fresh process.

    python round_trip.py save FOLDER   # builds, trains a step, saves .keras + outputs
    python round_trip.py load FOLDER   # keras.saving.load_model(safe_mode=True), compares

`load` prints one line per object and exits non-zero if any prediction differs.
"""

import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import pretrainlib as pl  # noqa: E402

TEXTS = ["a small dog barks", "a large cat sleeps", "the dog chases the cat",
         "birds sing at dawn", "the river runs to the sea", "a cold wind blows"]


def text_parts():
    tok = pl.text.WordPieceTokenizer.train(TEXTS, vocab_size=80)

    def encoder(**kwargs):
        return pl.backbones.TextEncoder(tok.vocab_size, num_layers=1, hidden_dim=16,
                                        num_heads=2, max_sequence_length=16, **kwargs)
    return tok, encoder


def image_batch():
    return pl.datasets.fashion_mnist().test.images[:8, :, :, None].astype("float32") / 255.0


def conv_net():
    return pl.backbones.ConvNet(widths=(4, 8), blocks_per_stage=1)


def objects():
    """{name: (model, inputs)}: every public model-like type, trained one step."""
    keras.utils.set_random_seed(0)
    tok, encoder = text_parts()
    tokens = tok.encode(TEXTS, 16)
    labels = np.arange(len(TEXTS)) % 2
    images = image_batch()
    found = {
        "TextEncoder": (encoder(), tokens),
        "TextEncoder(causal)": (encoder(causal=True), tokens),
        "ConvNet": (conv_net(), images),
        "VisionEncoder": (pl.backbones.VisionEncoder(input_shape=(28, 28, 1), patch_size=7,
                                                     num_layers=1, hidden_dim=16,
                                                     num_heads=2), images),
    }
    mlm = pl.objectives.MaskedLM(tokenizer=tok, whole_word=True)
    teacher = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                                keras.layers.Dense(3)])
    pretrainers = {
        "Pretrainer(MaskedLM)": (encoder(), mlm, tokens),
        "Pretrainer(CausalLM)": (encoder(causal=True), pl.objectives.CausalLM(), tokens),
        "Pretrainer(Autoencoder)": (conv_net(), pl.objectives.Autoencoder(patch_size=7),
                                    images),
        "Pretrainer(ImageClassification)": (conv_net(),
                                            pl.objectives.ImageClassification(3), images),
        "Pretrainer(Distillation)": (conv_net(), pl.objectives.Distillation(teacher),
                                     images),
    }
    for name, (backbone, objective, raw) in pretrainers.items():
        pre = pl.Pretrainer(backbone, objective)
        pre.compile(learning_rate=1e-3)
        labeled = isinstance(objective, (pl.objectives.ImageClassification,
                                          pl.objectives.Distillation))
        batch = objective.transform((raw, np.arange(len(raw)) % 3) if labeled else raw)
        pre.train_on_batch(*batch)
        found[name] = (pre, batch[0])
    policies = [pl.freezing.FullFineTune(), pl.freezing.FeatureExtraction(),
                pl.freezing.FreezeThenUnfreeze(1), pl.freezing.GradualUnfreeze(1),
                pl.freezing.LayerwiseLRDecay(0.8), pl.freezing.BitFit(),
                pl.freezing.LoRA(rank=2), pl.freezing.Adapters(4)]
    for policy in policies:
        ft = pl.FineTuner(encoder(), pl.heads.Classifier(2, hidden_dim=8), policy=policy)
        ft.compile(learning_rate=1e-3)
        ft.fit(pl.data.text_dataset(TEXTS, tok, labels=labels, batch_size=3,
                                    sequence_length=16, seed=0), epochs=1, verbose=0)
        found[f"FineTuner({type(policy).__name__})"] = (ft, tokens)
    image_ft = pl.FineTuner(conv_net(), pl.heads.Classifier(3))
    image_ft.compile()
    found["FineTuner(ConvNet)"] = (image_ft, images)
    return found, tok


def arrays(value, prefix):
    if isinstance(value, dict):
        return {f"{prefix}{key}": np.asarray(v) for key, v in value.items()}
    return {prefix: np.asarray(value)}


def parts(model) -> str:
    """The model's type and its policy / objective / head types, as a check string."""
    pieces = [model, getattr(model, "policy", None), getattr(model, "objective", None),
              getattr(model, "head", None)]
    return " ".join(type(p).__name__ for p in pieces if p is not None)


def save(folder: pathlib.Path):
    found, tok = objects()
    tok.save(str(folder / "tokenizer.json"))
    np.savez(folder / "tokenizer.npz", **arrays(tok.encode(TEXTS, 16), "ids_"))
    for i, (name, (model, inputs)) in enumerate(found.items()):
        model.save(folder / f"{i}.keras")
        outputs = model.predict_on_batch(inputs)
        np.savez(folder / f"{i}.npz", name=name, parts=parts(model),
                 **arrays(inputs, "in_"), **arrays(outputs, "out_"))


def load(folder: pathlib.Path) -> int:
    failures = 0
    tok = pl.text.WordPieceTokenizer.load(str(folder / "tokenizer.json"))
    expected = np.load(folder / "tokenizer.npz")
    same = all(np.array_equal(expected[f"ids_{k}"], v)
               for k, v in tok.encode(TEXTS, 16).items())
    print(f"WordPieceTokenizer: {'ok' if same else 'DIFFERENT'}")
    failures += not same
    for path in sorted(folder.glob("*.keras"), key=lambda p: int(p.stem)):
        saved = np.load(path.with_suffix(".npz"))
        model = keras.saving.load_model(path, safe_mode=True)
        inputs = {k[3:]: saved[k] for k in saved.files if k.startswith("in_")}
        inputs = inputs.get("", inputs)
        outputs = arrays(model.predict_on_batch(inputs), "out_")
        gap = max(float(np.abs(outputs[k] - saved[k]).max()) for k in outputs)
        ok = sorted(outputs) == sorted(k for k in saved.files if k.startswith("out_"))
        ok = ok and gap <= 1e-5 and parts(model) == str(saved["parts"])
        print(f"{saved['name']}: {'ok' if ok else 'DIFFERENT'} (max gap {gap:.2g}; "
              f"{parts(model)})")
        failures += not ok
    return failures


if __name__ == "__main__":
    mode, folder = sys.argv[1], pathlib.Path(sys.argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    if mode == "save":
        save(folder)
    else:
        sys.exit(1 if load(folder) else 0)
