"""Evaluation: metrics, reports and the Evaluator."""

from pretrainlib.evaluation.evaluator import Evaluator, plot_mistakes
from pretrainlib.evaluation.report import Report, comparison_table
from pretrainlib.evaluation.statistics import PairedDifference, SeedSpread, paired_difference, spread
from pretrainlib.evaluation.studies import StudyReport, cross_validate, label_efficiency

__all__ = ["Evaluator", "PairedDifference", "Report", "SeedSpread", "StudyReport",
           "comparison_table", "cross_validate", "label_efficiency", "paired_difference",
           "plot_mistakes", "spread"]
