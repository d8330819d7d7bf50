"""``rnaseq-svm``: linear SVM on standardised RNA-seq genes with Platt-scaled probabilities.

Same preparation, gene filtering and per-fold scaling as ``rnaseq-lr``. sklearn's
``CalibratedClassifierCV(LinearSVC, method="sigmoid", ensemble=False)`` fits one SVM on the training
fold and one sigmoid per class on cross-validated decision values; we keep only their numbers
(SVM weights, intercepts, sigmoid slopes and offsets) as safetensors and recompute the probabilities
with numpy exactly as sklearn does (binary: the positive class's sigmoid; multi-class: one-vs-rest
sigmoids normalised to sum to 1).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field
from sklearn.calibration import CalibratedClassifierCV
from sklearn.svm import LinearSVC

from gliotype.methods.registry import register_method
from gliotype.methods.rnaseq_lr import RnaseqLR, RnaseqLRConfig


class RnaseqSVMConfig(RnaseqLRConfig):
    C: float = Field(0.01, gt=0, description="inverse regularisation strength of the linear SVM")
    calibration_folds: int = Field(3, ge=2, description="inner folds for the Platt sigmoids (training fold only)")


@register_method("rnaseq-svm", config=RnaseqSVMConfig, modalities=("rnaseq",))
class RnaseqSVM(RnaseqLR):
    """Linear SVM with Platt scaling on gene expression; scaler and calibration fitted on the training fold only."""

    def fit_model(self, z, y, n_classes):
        svm = LinearSVC(C=self.config.C, max_iter=self.config.max_iter,
                        class_weight="balanced" if self.config.class_weight else None)
        model = CalibratedClassifierCV(svm, method="sigmoid", cv=self.config.calibration_folds, ensemble=False)
        model.fit(z, y)
        fitted = model.calibrated_classifiers_[0]
        return {"coef": fitted.estimator.coef_, "intercept": fitted.estimator.intercept_,
                "sigmoid_a": np.array([c.a_ for c in fitted.calibrators]),
                "sigmoid_b": np.array([c.b_ for c in fitted.calibrators])}

    def model_proba(self, params, z):
        decision = z @ params["coef"].T + params["intercept"]
        p = 1.0 / (1.0 + np.exp(decision * params["sigmoid_a"] + params["sigmoid_b"]))
        if p.shape[1] == 1:  # binary: one sigmoid on the positive class
            return np.hstack([1 - p, p])
        total = p.sum(1, keepdims=True)
        return np.where(total == 0, 1.0 / p.shape[1], p / np.where(total == 0, 1, total))
