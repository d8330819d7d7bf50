"""Expression preparation for the RNA encoder, fitted on training samples only (paper 003, section 2.2).

:class:`ExpressionScaler` learns, from the training samples of one fold:

1. the genes with no missing value in any training sample ("keep genes present in all tables");
2. whether to take ``log2(1 + x)``: ``log="auto"`` does when every kept value is ``>= 0`` and the largest is
   ``> 100``. Raw counts, TPM and FPKM are non-negative and reach thousands; values already on a log scale
   stay below ~20 (``log2(1e6)``) and z-scores or log-ratios have negatives, so neither is transformed twice.
   ``log=True`` / ``False`` force the choice (``True`` needs non-negative values);
3. the genes whose training variance (population, ``ddof=0``, after the log) exceeds ``min_variance``, then,
   when ``keep_top_variance`` is set, the most variable of those. The default keeps every gene above a tiny
   variance: a constant gene cannot be z-scored (division by 0) and says nothing, but the paper gives no
   cut-off and a top-k cut chosen without a validation split would be tuning on the test folds; set
   ``keep_top_variance`` to follow the paper's "drop low-variance genes" on a whole-transcriptome table;
4. each kept gene's training mean and standard deviation (``ddof=0``) for the z-score, clipped to
   ``+-clip`` (robust to the rare extreme values of public tables; ``None`` keeps them).

:meth:`ExpressionScaler.transform` applies the same steps to any table: columns in the fitted gene order,
a gene the table lacks (or an unmeasured value) becomes 0, the training mean; more than
``max_missing_genes`` of the genes missing is an error. :meth:`~ExpressionScaler.state` and
:meth:`~ExpressionScaler.from_state` give tensors (for safetensors) and a JSON-able dict (for the sidecar).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field

from gliotype.rna.tokens import GeneTokens

__all__ = ["ExpressionScaler", "ScalerConfig", "looks_raw", "restrict_tokens"]

log = logging.getLogger(__name__)

RAW_MAX = 100.0
"""``log="auto"`` takes log2(1 + x) of non-negative tables whose largest value exceeds this."""


class ScalerConfig(BaseModel):
    """How :class:`ExpressionScaler` filters and normalises genes (module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    log: Literal["auto"] | bool = "auto"
    min_variance: float = Field(1e-8, ge=0)
    keep_top_variance: int | None = Field(None, ge=1)
    clip: float | None = Field(5.0, gt=0)
    max_missing_genes: float = Field(0.1, ge=0, le=1)


def looks_raw(values: np.ndarray) -> bool:
    """Whether ``log="auto"`` takes the log: every value ``>= 0`` and the largest ``> RAW_MAX``."""
    values = values[np.isfinite(values)]
    return bool(values.size) and bool(values.min() >= 0) and bool(values.max() > RAW_MAX)


class ExpressionScaler:
    """Gene filter, optional log and z-score, learnt from training samples (module docstring).

    Shapes:
        :meth:`fit` takes a samples x genes frame; :meth:`transform` returns ``(samples, len(genes))`` float32.
    """

    def __init__(self, config: ScalerConfig | None = None):
        self.config = config or ScalerConfig()
        self.genes: list[str] = []
        self.log2: bool = False
        self.mean = np.zeros(0)
        self.scale = np.zeros(0)
        self.report: dict = {}

    def fit(self, frame: pd.DataFrame) -> ExpressionScaler:
        """Learn genes, log and statistics from the training samples ``frame`` (rows samples, columns genes)."""
        values = _numeric(frame)
        complete = values.columns[values.notna().all().to_numpy()]
        if not len(complete):
            raise ValueError(f"every one of the {values.shape[1]} genes has a missing value in some of the "
                             f"{len(values)} training samples; fill or drop the incomplete samples first")
        x = values[complete].to_numpy(np.float64)
        self.log2 = looks_raw(x) if self.config.log == "auto" else bool(self.config.log)
        if self.log2 and x.min() < 0:
            raise ValueError(f"log=True needs non-negative expression (counts, TPM); the training samples have "
                             f"values down to {x.min():.3g}; use log=False for z-scores or log-ratios")
        x = np.log2(1 + x) if self.log2 else x
        keep = self._variable(x.var(axis=0))
        self.genes = [str(g) for g in complete[keep]]
        self.mean, self.scale = x[:, keep].mean(axis=0), x[:, keep].std(axis=0)
        self.report = {"samples": len(values), "genes_in": values.shape[1],
                       "incomplete": values.shape[1] - len(complete), "low_variance": len(complete) - len(self.genes),
                       "genes": len(self.genes), "log2": self.log2}
        log.info("expression scaler: %s", self.report)
        return self

    def _variable(self, variance: np.ndarray) -> np.ndarray:
        """Indices of the genes kept: variance above ``min_variance``, then the ``keep_top_variance`` largest."""
        keep = np.flatnonzero(variance > self.config.min_variance)
        if not len(keep):
            raise ValueError(f"no gene varies across the training samples (variance <= {self.config.min_variance}); "
                             "check that the table holds expression values, one row per sample")
        top = self.config.keep_top_variance
        if top is not None and top < len(keep):
            keep = np.sort(keep[np.argsort(-variance[keep], kind="stable")[:top]])
        return keep

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """The z-scores of ``frame``'s samples in :attr:`genes` order; a missing gene or value is 0 (the mean).

        Shapes:
            frame (n, any genes) -> (n, len(genes)) float32
        """
        if not self.genes:
            raise RuntimeError("ExpressionScaler: call fit (or from_state) before transform")
        values = _numeric(frame).reindex(columns=self.genes)
        lacking = values.columns[values.isna().all().to_numpy()] if len(values) else []
        if len(lacking) > self.config.max_missing_genes * len(self.genes):
            raise ValueError(f"the table lacks {len(lacking)} of the model's {len(self.genes)} genes "
                             f"(e.g. {list(lacking[:5])}), more than max_missing_genes="
                             f"{self.config.max_missing_genes}; use the training cohort's gene panel")
        x = values.to_numpy(np.float64)
        x = np.log2(1 + np.maximum(x, 0)) if self.log2 else x
        z = np.nan_to_num((x - self.mean) / self.scale, nan=0.0)
        if self.config.clip is not None:
            z = np.clip(z, -self.config.clip, self.config.clip)
        return z.astype(np.float32)

    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """Tensors ``mean``, ``scale`` (float64) and a JSON-able dict (genes, log, config, report)."""
        tensors = {"mean": torch.from_numpy(self.mean.copy()), "scale": torch.from_numpy(self.scale.copy())}
        return tensors, {"genes": list(self.genes), "log2": self.log2, "config": self.config.model_dump(),
                         "report": self.report}

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], meta: dict) -> ExpressionScaler:
        """The scaler that :meth:`state` described."""
        scaler = cls(ScalerConfig(**meta["config"]))
        scaler.genes, scaler.log2, scaler.report = list(meta["genes"]), bool(meta["log2"]), dict(meta.get("report", {}))
        scaler.mean = tensors["mean"].double().numpy()
        scaler.scale = tensors["scale"].double().numpy()
        if not len(scaler.mean) == len(scaler.scale) == len(scaler.genes):
            raise ValueError(f"scaler state: {len(scaler.genes)} genes but {len(scaler.mean)} means and "
                             f"{len(scaler.scale)} scales; the tensors and the sidecar come from different fits")
        return scaler


def _numeric(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` without a ``patient_id`` column, as floats; non-numeric columns are an error naming them."""
    frame = frame.drop(columns=[c for c in ("patient_id",) if c in frame.columns])
    bad = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        raise ValueError(f"expression columns must be numbers; {len(bad)} are not, e.g. {bad[:5]}: drop them "
                         "(identifiers, labels) before scaling")
    return frame.astype(np.float64)


def restrict_tokens(tokens: GeneTokens, genes: Iterable[str]) -> GeneTokens:
    """``tokens`` with only the genes in ``genes`` (e.g. those a scaler kept); tokens left empty are dropped.

    The report gains ``filtered_out``, the number of token genes removed, and ``dropped_tokens``.
    """
    keep = set(genes)
    pairs = [(n, tuple(g for g in t if g in keep)) for n, t in zip(tokens.names, tokens.genes)]
    kept = [(n, t) for n, t in pairs if t]
    if not kept:
        raise ValueError(f"none of the {sum(tokens.sizes)} token genes is among the {len(keep)} genes kept; "
                         "the tokens were built for another gene panel")
    report = {**tokens.report, "filtered_out": sum(tokens.sizes) - sum(len(t) for _, t in kept),
              "dropped_tokens": [n for n, t in pairs if not t]}
    return GeneTokens(tuple(n for n, _ in kept), tuple(t for _, t in kept), tokens.source, report)
