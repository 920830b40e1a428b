"""pretrainlib: pretrain -> fine-tune -> evaluate, the Keras way.

    import pretrainlib as pl
    pre = pl.Pretrainer(backbone, pl.objectives.MaskedLM(tokenizer=tok))
    ft = pl.FineTuner(backbone, pl.heads.Classifier(4), policy=pl.freezing.FreezeThenUnfreeze())
    report = pl.Evaluator(["accuracy", "macro_f1"]).evaluate(ft, test_ds)
"""

from pretrainlib import (
    backbones,
    compress,
    data,
    datasets,
    distribute,
    epochs,
    evaluation,
    freezing,
    generation,
    heads,
    hub,
    semi,
    serving,
    objectives,
    text,
    training,
    tune,
)
from pretrainlib.evaluation import Evaluator
from pretrainlib.finetuner import FineTuner
from pretrainlib.pretrainer import Pretrainer

__version__ = "0.2.0"

__all__ = [
    "Evaluator",
    "FineTuner",
    "Pretrainer",
    "backbones",
    "compress",
    "data",
    "datasets",
    "distribute",
    "epochs",
    "evaluation",
    "freezing",
    "generation",
    "heads",
    "hub",
    "semi",
    "serving",
    "objectives",
    "text",
    "training",
    "tune",
]
