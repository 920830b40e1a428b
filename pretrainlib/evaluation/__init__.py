"""Evaluation: metrics, reports and the Evaluator."""

from pretrainlib.evaluation.evaluator import Evaluator, plot_mistakes
from pretrainlib.evaluation.report import Report, comparison_table
from pretrainlib.evaluation.studies import StudyReport, cross_validate, label_efficiency

__all__ = ["Evaluator", "Report", "StudyReport", "comparison_table", "cross_validate",
           "label_efficiency", "plot_mistakes"]
