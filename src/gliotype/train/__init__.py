"""Fitting, cross-validation, checkpoints and applying a trained run to another cohort."""

from gliotype.train.apply import evaluate, predict
from gliotype.train.runner import train

__all__ = ["evaluate", "predict", "train"]
