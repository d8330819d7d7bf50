"""``rnaseq``: paper 003's gene-token RNA encoder, pretrained by its own objective, then fine-tuned to classify.

Preparation (once per cohort): the expression table keeps every sample (a patient may have several, e.g.
lineages; ``sample_id`` of ``rnaseq.tsv``), label-like columns (``IDH1_mut``, ``Grade`` ...:
:func:`~gliotype.methods.leakage.leaky_columns`) are dropped and reported, and the genes are grouped into
tokens (:mod:`gliotype.rna.tokens`): Louvain communities of the PPI (``ppi=`` or the cohort's ``ppi.csv``)
merged to ``n_tokens`` plus a remainder token, or one token per chromosome (``groups=chromosome``,
``chromosomes=`` a gene -> chromosome table). The token count and sizes go into the run's fingerprint.
Only fitting needs tokens: where they cannot be built (no PPI ...), ``prepare`` records why and ``fit`` raises
it, so that a restored model predicts (from its sidecar's tokens) on a cohort without a PPI.

Fit, on the training patients of a fold only:

1. :class:`~gliotype.rna.prepare.ExpressionScaler` learns the genes, log and z-score from the training
   samples; the tokens keep only its genes.
2. Pretraining (``pretrain_epochs``): ``L = L_r + contrastive_weight * L_c`` (eq. 5), ``L_r`` the masked-token
   reconstruction (eq. 2, :meth:`RNAEncoder.reconstruction_loss`) and ``L_c`` the lineage InfoNCE (eqs. 3-5,
   :func:`~gliotype.losses.lineage.lineage_infonce`) with positives = samples of the same patient. Each
   sample enters twice, with two independently drawn masks: with one sample per patient (TCGA) its positive
   is its own second masked view, so every sample has one; a patient's other samples are positives too.
3. Fine-tuning (``epochs``): the encoder plus a linear head on the CLS state, class-weighted cross-entropy
   over samples, each sample labelled with its patient's class (``finetune="head"`` freezes the encoder:
   the paper's frozen variant; ``pretrain_epochs=0``: its random initialisation).

A patient's probabilities are the mean of its samples'. Both phases run through
:func:`~gliotype.train.fit.fit_torch` (``work_dir/pretrain``, ``work_dir/finetune``: resumable, seeded with
the fold's seed, device chosen at run time) for a fixed number of epochs with a cosine schedule; no
validation split is carved (as the paper: a fixed schedule). The state is the network's tensors
(``model.*``) and the scaler's (``scaler.*``); the sidecar carries the genes and the tokens.

Pretraining keeps the author code's AdamW lr 1e-4, weight decay 0.02, cosine schedule, 20 epochs, batch 32,
tau 0.005, dim 128, 8 heads, depth 1. The paper has no classification head; our fine-tuning (same optimiser, weight
decay, schedule and batch) uses ``lr=1e-3`` for ``epochs=20``: at 1e-4, the ~100 steps of one TCGA fold
(~160 samples) underfit (IDH pooled AUC 0.93, balanced accuracy 0.83, against 0.97 and 0.90 at 1e-3).
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from pydantic import Field
from torch import nn

from gliotype.cohort import Cohort
from gliotype.losses.lineage import lineage_infonce
from gliotype.methods.base import Distributed, FitContext, Method, MethodConfig, Prepared
from gliotype.methods.leakage import expression_features
from gliotype.methods.registry import register_method
from gliotype.methods.torch_method import class_weights
from gliotype.nn.rna import RNAEncoder
from gliotype.rna.prepare import ExpressionScaler, ScalerConfig, restrict_tokens
from gliotype.rna.tokens import REMAINDER, GeneTokens, TokenConfig, cohort_tokens
from gliotype.train.fit import fit_torch, torch_device

log = logging.getLogger(__name__)

ENCODER_FIELDS = ("dim", "heads", "depth", "embed_dropout", "dropout", "projection", "masking", "mask_fraction",
                  "tau")


class RnaseqConfig(MethodConfig):
    # gene tokens
    groups: Literal["ppi", "chromosome"] = "ppi"
    ppi: str | None = Field(None, description="PPI edges file; default: the cohort's ppi.csv")
    chromosomes: str | None = Field(None, description="gene -> chromosome table, for groups=chromosome")
    n_tokens: int = Field(7, ge=1, description="PPI tokens after merging (the remainder token not counted)")
    resolution: float = Field(1.0, gt=0, description="Louvain resolution")
    directed: bool = False
    seed: int = Field(0, description="Louvain's seed (the grouping); the run's --seed covers training")
    # expression scaling (gliotype.rna.prepare.ScalerConfig)
    log: Literal["auto"] | bool = "auto"
    min_variance: float = Field(1e-8, ge=0)
    keep_top_variance: int | None = Field(None, ge=1)
    clip: float | None = Field(5.0, gt=0)
    max_missing_genes: float = Field(0.1, ge=0, le=1)
    # encoder (gliotype.nn.rna.RNAEncoderConfig)
    dim: int = Field(128, ge=1)
    heads: int = Field(8, ge=1)
    depth: int = Field(1, ge=1)
    embed_dropout: float = Field(0.5, ge=0, lt=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    projection: int = Field(64, ge=1)
    masking: Literal["token", "values"] = "token"
    mask_fraction: float = Field(0.3, gt=0, lt=1)
    tau: float = Field(0.005, gt=0)
    contrastive_weight: float = Field(1.0, ge=0, description="weight of L_c against L_r in pretraining (eq. 5: 1)")
    # training
    pretrain_epochs: int = Field(20, ge=0, description="0: no pretraining (random initialisation)")
    pretrain_lr: float = Field(1e-4, gt=0)
    epochs: int = Field(20, ge=1, description="fine-tuning epochs (--epochs overrides)")
    lr: float = Field(1e-3, gt=0, description="fine-tuning learning rate")
    weight_decay: float = Field(0.02, ge=0)
    batch_size: int = Field(32, ge=2)
    schedule: Literal["constant", "cosine"] = "cosine"
    finetune: Literal["all", "head"] = Field("all", description="head: the encoder stays frozen")
    class_weighting: bool = True
    num_workers: int = Field(0, ge=0)


class RnaseqClassifier(nn.Module):
    """The RNA encoder and a linear head on its CLS state.

    Shapes:
        x (B, G) -> logits (B, n_classes)
    """

    def __init__(self, encoder: RNAEncoder, n_classes: int, frozen: bool = False):
        super().__init__()
        self.encoder, self.frozen = encoder, frozen
        self.head = nn.Linear(encoder.config.dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls, _ = self.encoder(x)
        return self.head(cls)

    def train(self, mode: bool = True) -> RnaseqClassifier:
        super().train(mode)
        if self.frozen:
            self.encoder.eval()  # frozen: BatchNorm statistics and dropout as in evaluation
        return self


@register_method("rnaseq", config=RnaseqConfig, modalities=("rnaseq",))
class Rnaseq(Method):
    """Gene-token transformer (PPI communities), masked + lineage-contrastive pretraining, fine-tuned head."""

    needs = ("rnaseq",)
    uses_validation = False

    def __init__(self, config: RnaseqConfig):
        super().__init__(config)
        self.tokens: GeneTokens | None = None  # built by prepare, over the table's genes
        self.used: GeneTokens | None = None  # restricted to the scaler's genes by fit (or restore)
        self.scaler_meta: dict = {}
        self.token_error = "rnaseq: no gene tokens; call prepare(cohort, ...) before fit"

    # --- preparation ----------------------------------------------------------------------------

    def prepare(self, cohort: Cohort, patient_ids: list[str], cache_dir: Path | None = None,
                workers: int = 1, progress: bool = False) -> Prepared:
        table = cohort.rnaseq()
        table, dropped = expression_features(table)
        tokens = self.prepare_tokens(cohort, list(table.columns[1:]))
        samples = per_patient(table)
        inputs = {p: samples[p] for p in patient_ids if p in samples}
        failed = {p: "no RNA-seq sample in rnaseq.tsv" for p in patient_ids if p not in samples}
        return Prepared(inputs, failed, {"rnaseq": cohort.rnaseq_path.name, "dropped_label_columns": dropped,
                                         "tokens": tokens})

    def prepare_tokens(self, cohort: Cohort, genes: list[str]) -> dict:
        """Build :attr:`tokens`; returns their fingerprint. Only ``fit`` needs them (a restored model predicts
        from its sidecar's tokens, on a cohort without a PPI), so a failure is kept and raised by ``fit``."""
        try:
            self.tokens, source = self.build_tokens(cohort, genes)
        except (ValueError, FileNotFoundError) as err:
            self.tokens, self.token_error = None, str(err)
            log.info("rnaseq: no gene tokens, fit will refuse (%s)", err)
            return {"error": str(err)}
        log.info("rnaseq gene tokens from %s: %s", source, self.tokens.summary())
        return token_fingerprint(self.tokens, source)

    def build_tokens(self, cohort: Cohort, genes: list[str]) -> tuple[GeneTokens, str]:
        """The gene tokens of the configured grouping and where they came from (a file name)."""
        cfg = self.config
        return cohort_tokens(cohort, genes, TokenConfig(grouping=cfg.groups, n_tokens=cfg.n_tokens, seed=cfg.seed,
                                                        resolution=cfg.resolution, directed=cfg.directed),
                             cfg.ppi, cfg.chromosomes, "rnaseq")

    # --- fitting --------------------------------------------------------------------------------

    def fit(self, train, y_train, val, y_val, n_classes, ctx: FitContext) -> dict[str, torch.Tensor]:
        if self.tokens is None:
            raise ValueError(self.token_error)
        frame, owner = stack(train)
        scaler = ExpressionScaler(self.scaler_config()).fit(frame)
        scaler_tensors, self.scaler_meta = scaler.state()
        self.used = restrict_tokens(self.tokens, scaler.genes)
        x = torch.from_numpy(scaler.transform(frame))
        torch.manual_seed(ctx.seed)
        model = self.build(n_classes)
        pretrain = self.pretrain(model.encoder, x, owner, ctx)
        y = np.asarray(y_train, dtype=np.int64)[owner]
        weights, finetune = self.finetune(model, x, y, n_classes, ctx)
        self.fit_summary = {"samples": len(x), "patients": len(train), "tokens": self.used.summary(),
                            "scaler": scaler.report, "pretrain": pretrain, "finetune": finetune}
        return {**{f"model.{k}": v for k, v in weights.items()},
                **{f"scaler.{k}": v for k, v in scaler_tensors.items()}}

    def pretrain(self, encoder: RNAEncoder, x: torch.Tensor, owner: np.ndarray, ctx: FitContext) -> dict:
        """Eq. 5 on the training samples, two masked views per sample; ``encoder`` takes the weights."""
        cfg = self.config
        if cfg.pretrain_epochs == 0:
            return {"epochs_run": 0}

        def step(model, batch, ids, training):
            twice = torch.cat([batch, batch])
            reconstruction, cls = model.reconstruction_loss(twice, model.sample_mask(len(twice)))
            contrastive = lineage_infonce(model.project(cls), torch.cat([ids, ids]), cfg.tau)
            return reconstruction + cfg.contrastive_weight * contrastive, None

        weights, summary = self._fit(encoder, step, x, owner, ctx.work_dir / "pretrain", cfg.pretrain_epochs,
                                     cfg.pretrain_lr, ctx, ctx.distributed.finding_unused_parameters())
        encoder.load_state_dict(weights)
        return summary

    def finetune(self, model: RnaseqClassifier, x: torch.Tensor, y: np.ndarray, n_classes: int,
                 ctx: FitContext) -> tuple[dict[str, torch.Tensor], dict]:
        """Class-weighted cross-entropy of the head (and the encoder unless ``finetune="head"``)."""
        weight = class_weights(y, n_classes, self.config.class_weighting)
        fixed = model.encoder if model.frozen else nn.ModuleList([model.encoder.decoders, model.encoder.projection])
        for parameter in [*fixed.parameters(), model.encoder.mask_embedding]:  # the pretraining-only parts
            parameter.requires_grad_(False)

        def step(model, batch, labels, training):
            logits = model(batch)
            return nn.functional.cross_entropy(logits, labels, weight=weight.to(logits.device)), logits

        return self._fit(model, step, x, y, ctx.work_dir / "finetune", ctx.epochs or self.config.epochs,
                         self.config.lr, ctx)

    def _fit(self, model, step, x, y, work_dir: Path, epochs: int, lr: float, ctx: FitContext,
             distributed: Distributed | None = None):
        cfg = self.config
        with warnings.catch_warnings():  # no validation split, by design: Lightning warns of its empty loader
            warnings.filterwarnings("ignore", message=r".*length of `DataLoader` across ranks is zero.*")
            return fit_torch(model, step, collate, list(x), y, [], np.zeros(0, np.int64), work_dir=work_dir,
                             epochs=epochs, batch_size=cfg.batch_size, lr=lr, weight_decay=cfg.weight_decay,
                             patience=epochs, seed=ctx.seed, device=ctx.device, progress=ctx.progress,
                             num_workers=cfg.num_workers, sidecar={"method": self.name}, schedule=cfg.schedule,
                             distributed=distributed or ctx.distributed)

    def build(self, n_classes: int) -> RnaseqClassifier:
        """A fresh network for the fitted genes and tokens (:attr:`used`, :attr:`scaler_meta`)."""
        encoder = RNAEncoder.from_tokens(self.used, self.scaler_meta["genes"],
                                         **{k: getattr(self.config, k) for k in ENCODER_FIELDS})
        return RnaseqClassifier(encoder, n_classes, frozen=self.config.finetune == "head")

    def scaler_config(self) -> ScalerConfig:
        return ScalerConfig(**{k: getattr(self.config, k) for k in ScalerConfig.model_fields})

    # --- prediction -----------------------------------------------------------------------------

    @torch.no_grad()
    def predict_proba(self, state, inputs, n_classes, device="auto") -> np.ndarray:
        """Each patient's mean sample probabilities. Shapes: returns (n_patients, n_classes)."""
        if not len(inputs):
            return np.zeros((0, n_classes))
        if self.used is None:
            raise RuntimeError("rnaseq: no fitted genes; call fit, or restore(sidecar) on a loaded state")
        frame, owner = stack(inputs)
        scaler = ExpressionScaler.from_state({k[7:]: v for k, v in state.items() if k.startswith("scaler.")},
                                             self.scaler_meta)
        model = self.build(n_classes)
        model.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
        dev = torch_device(device)
        model.to(dev).eval()
        x = torch.from_numpy(scaler.transform(frame))
        probs = torch.cat([torch.softmax(model(part.to(dev)).float(), dim=1).cpu() for part in x.split(256)])
        return pd.DataFrame(probs.double().numpy()).groupby(owner).mean().to_numpy()

    def sidecar(self) -> dict:
        return {"scaler": self.scaler_meta, "tokens": json.loads(self.used.to_json())}

    def restore(self, sidecar: dict) -> None:
        self.scaler_meta = dict(sidecar["scaler"])
        self.used = GeneTokens.from_json(json.dumps(sidecar["tokens"]))


def per_patient(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each patient's samples x genes (float64, one block) from ``read_rnaseq``'s table (``patient_id`` first)."""
    values = table.iloc[:, 1:].to_numpy(np.float64)  # one copy: the table's columns are separate blocks
    rows = pd.Series(np.arange(len(table))).groupby(table["patient_id"].to_numpy(), sort=False).indices
    return {str(p): pd.DataFrame(values[i], index=table.index[i], columns=table.columns[1:]) for p, i in rows.items()}


def stack(items: list[pd.DataFrame]) -> tuple[pd.DataFrame, np.ndarray]:
    """All samples of ``items`` (one frame of samples x genes per patient) and each sample's patient index.

    Shapes:
        -> frame (total samples, genes), owner (total samples,) int64
    """
    frames = [pd.DataFrame(item).T if isinstance(item, pd.Series) else pd.DataFrame(item) for item in items]
    owner = np.repeat(np.arange(len(frames)), [len(f) for f in frames])
    return pd.concat(frames, axis=0), owner


def collate(batch: list) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack samples and their labels (class or patient index). Shapes: -> (B, G), (B,)."""
    xs, ys = zip(*batch)
    return torch.stack(xs), torch.as_tensor(ys, dtype=torch.long)


def token_fingerprint(tokens: GeneTokens, source: str) -> dict:
    """What the run records of its tokens: source file, count, names, sizes, remainder, grouping report."""
    remainder = tokens.sizes[-1] if tokens.names[-1] == REMAINDER else 0
    return {"source": source, "grouping": tokens.source, "count": len(tokens.names), "names": list(tokens.names),
            "sizes": list(tokens.sizes), "remainder": remainder, "report": tokens.report}
