"""Compressing a fine-tuned model for shipping: quantization, pruning, measuring.

    report = pl.compress.quantize(ft, "int8")          # Keras's quantization, in place
    pruning = pl.compress.prune(ft, sparsity=0.5)      # magnitude pruning, masks held
    ft.fit(data, callbacks=[pruning])                  # ... through fine-tuning
    pl.compress.strip_pruning(ft)                      # exact zeros, ready to export
    print(pl.compress.measure(ft, test_data))          # size, latency, metrics
"""

from pretrainlib.compress.measure import Measurement, measure
from pretrainlib.compress.pruning import (
    GradualSchedule,
    Pruning,
    prune,
    sparsity_of,
    strip_pruning,
)
from pretrainlib.compress.quantization import MODES, QuantizationReport, quantize

__all__ = ["GradualSchedule", "MODES", "Measurement", "Pruning", "QuantizationReport",
           "measure", "prune", "quantize", "sparsity_of", "strip_pruning"]
