"""Evaluation: metrics, stratified patient-level bootstrap intervals, paired comparisons, calibration."""

from gliotype.evaluate.bootstrap import bootstrap_ci
from gliotype.evaluate.calibration import expected_calibration_error, reliability_curve
from gliotype.evaluate.metrics import compute_metrics
from gliotype.evaluate.paired import paired_auc_test
from gliotype.evaluate.predictions import read_predictions
from gliotype.evaluate.summary import metrics_report

__all__ = [
    "bootstrap_ci",
    "compute_metrics",
    "expected_calibration_error",
    "metrics_report",
    "paired_auc_test",
    "read_predictions",
    "reliability_curve",
]
