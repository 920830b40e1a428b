"""Evaluation: metrics, reports and the Evaluator."""

from pretrainlib.evaluation.evaluator import Evaluator, plot_mistakes
from pretrainlib.evaluation.report import Report, comparison_table

__all__ = ["Evaluator", "Report", "comparison_table", "plot_mistakes"]
