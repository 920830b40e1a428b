"""Evaluation: metrics, reports and the Evaluator."""

from pretrainlib.evaluation.evaluator import Evaluator
from pretrainlib.evaluation.report import Report, comparison_table

__all__ = ["Evaluator", "Report", "comparison_table"]
