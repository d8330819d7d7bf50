"""``rnaseq-lr``: standardised L2 logistic regression on RNA-seq genes (the baseline of paper 003's ``rnaseq``).

Several samples of one patient are averaged into one profile (the unit is the patient). The scaler is
fitted on the training patients of each fold only. Parameters are stored as safetensors (mean, scale,
coefficients, intercept) and the gene order in the sidecar: no pickle.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pydantic import Field
from sklearn.linear_model import LogisticRegression

from gliotype.cohort import Cohort
from gliotype.methods.base import FitContext, Method, MethodConfig, Prepared
from gliotype.methods.leakage import expression_features
from gliotype.methods.registry import register_method

log = logging.getLogger(__name__)


class RnaseqLRConfig(MethodConfig):
    C: float = Field(0.1, gt=0, description="inverse L2 regularisation strength")
    class_weight: bool = True
    max_iter: int = 2000
    clip: float | None = Field(5.0, gt=0, description="clip standardised values to +-clip (robust to outliers); None keeps them")
    min_variance: float = Field(1e-8, ge=0, description="genes with training variance at or below this are dropped")
    max_missing_genes: float = Field(0.1, ge=0, le=1, description="largest fraction of model genes a new cohort may lack")


@register_method("rnaseq-lr", config=RnaseqLRConfig, modalities=("rnaseq",))
class RnaseqLR(Method):
    """Standardised logistic regression on gene expression; scaler fitted on the training fold only."""

    needs = ("rnaseq",)
    uses_validation = False

    def __init__(self, config: RnaseqLRConfig):
        super().__init__(config)
        self.genes: list[str] = []

    def prepare(self, cohort: Cohort, patient_ids: list[str], cache_dir: Path | None = None,
                workers: int = 1, progress: bool = False) -> Prepared:
        table = cohort.rnaseq()
        table, dropped = expression_features(table)
        profiles = table.groupby("patient_id").mean()
        missing = [p for p in patient_ids if p not in profiles.index]
        inputs = {p: profiles.loc[p] for p in patient_ids if p in profiles.index}
        return Prepared(inputs, {p: "no RNA-seq sample in rnaseq.tsv" for p in missing},
                        {"rnaseq": cohort.rnaseq_path.name, "dropped_label_columns": dropped})

    def fit(self, train, y_train, val, y_val, n_classes, ctx: FitContext) -> dict[str, torch.Tensor]:
        x = pd.DataFrame(train)
        x = x.loc[:, x.notna().all() & (x.var() > self.config.min_variance)]
        self.genes = list(x.columns)
        mean, scale = x.mean().to_numpy(), x.std(ddof=0).to_numpy().copy()
        params = self.fit_model(self._clip((x.to_numpy() - mean) / scale), y_train, n_classes)
        return {k: torch.tensor(np.asarray(v), dtype=torch.float64) for k, v in
                {"mean": mean, "scale": scale, **params}.items()}

    def fit_model(self, z: np.ndarray, y: np.ndarray, n_classes: int) -> dict[str, np.ndarray]:
        """Fit the classifier on standardised genes; returns its parameters as arrays.

        Shapes:
            z: (n, genes), y: (n,) -> coef (n_classes, genes), intercept (n_classes,).
        """
        model = LogisticRegression(C=self.config.C, max_iter=self.config.max_iter,
                                   class_weight="balanced" if self.config.class_weight else None)
        model.fit(z, y)
        coef, intercept = model.coef_, model.intercept_
        if n_classes == 2:  # sklearn keeps one row for binary problems: expand to one per class
            coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
        return {"coef": coef, "intercept": intercept}

    def predict_proba(self, state, inputs, n_classes, device="auto") -> np.ndarray:
        x = pd.DataFrame(inputs).reindex(columns=self.genes)
        lacking = x.columns[x.isna().all()]
        if len(lacking) > self.config.max_missing_genes * len(self.genes):
            raise ValueError(f"the cohort lacks {len(lacking)} of the model's {len(self.genes)} genes "
                             f"(e.g. {list(lacking[:5])}); use the same gene panel as the training cohort")
        s = {k: v.numpy() for k, v in state.items()}
        z = self._clip(np.nan_to_num((x.to_numpy() - s["mean"]) / s["scale"]))  # a missing gene sits at the mean
        return self.model_proba(s, z)

    def model_proba(self, params: dict[str, np.ndarray], z: np.ndarray) -> np.ndarray:
        """Class probabilities from the parameters of :meth:`fit_model`; (n, genes) -> (n, n_classes)."""
        logits = z @ params["coef"].T + params["intercept"]
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(1, keepdims=True)

    def _clip(self, z: np.ndarray) -> np.ndarray:
        return z if self.config.clip is None else np.clip(z, -self.config.clip, self.config.clip)

    def sidecar(self) -> dict:
        return {"genes": self.genes}

    def restore(self, sidecar: dict) -> None:
        self.genes = list(sidecar["genes"])
