"""rnaseq-lr and rnaseq-svm: stored parameters reproduce sklearn's probabilities exactly."""

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from gliotype.methods import FitContext, create_method


def data(n_classes, n=60, genes=8, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    x = rng.normal(size=(n, genes)) + np.eye(n_classes, genes)[y] * 1.5
    frame = [pd.Series(row, index=[f"G{g}" for g in range(genes)]) for row in x]
    return frame, y, (x - x.mean(0)) / x.std(0)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_svm_probabilities_equal_sklearns(n_classes, tmp_path):
    frame, y, z = data(n_classes)
    method = create_method("rnaseq-svm", clip=None)
    state = method.fit(frame, y, [], y[:0], n_classes, FitContext(tmp_path))
    ours = method.predict_proba(state, frame, n_classes)
    ref = CalibratedClassifierCV(LinearSVC(C=0.01, max_iter=2000, class_weight="balanced"), method="sigmoid",
                                 cv=3, ensemble=False).fit(z, y)
    assert np.allclose(ours, ref.predict_proba(z), atol=1e-8)
    assert np.allclose(ours.sum(1), 1)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_lr_probabilities_equal_sklearns(n_classes, tmp_path):
    frame, y, z = data(n_classes)
    method = create_method("rnaseq-lr", clip=None)
    state = method.fit(frame, y, [], y[:0], n_classes, FitContext(tmp_path))
    ref = LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced").fit(z, y)
    assert np.allclose(method.predict_proba(state, frame, n_classes), ref.predict_proba(z), atol=1e-8)


def test_missing_gene_panel_is_refused(tmp_path):
    frame, y, _ = data(2)
    method = create_method("rnaseq-lr")
    state = method.fit(frame, y, [], y[:0], 2, FitContext(tmp_path))
    other = [s.rename(lambda g: g.replace("G", "X")) for s in frame]
    with pytest.raises(ValueError, match="lacks 8 of the model's 8 genes"):
        method.predict_proba(state, other, 2)
