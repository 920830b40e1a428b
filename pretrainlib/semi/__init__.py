"""Semi-supervised fine-tuning: learn from an unlabeled pool beside the labels.

    ft = pl.FineTuner(backbone, pl.heads.Classifier(6), preprocessor=...,
                      semi_supervised=pl.semi.Consistency(threshold=0.9))
    ft.compile()
    ft.fit(texts, labels, unlabeled=unlabeled_texts, epochs=10)

`PseudoLabel` (self-training with a confidence threshold) and `Consistency`
(FixMatch for images, UDA-style token replacement for text) compose with every
freezing policy and transform, checkpoints and resume, and distribution strategies.
"""

from pretrainlib.semi.methods import Consistency, PseudoLabel, SemiSupervised

__all__ = ["Consistency", "PseudoLabel", "SemiSupervised"]
