"""``hiperfgnn``: VQ-VAE perfusion habitats + structure-guided supervoxels, hierarchical PNA GNN (paper 002).

Per fold, on the training patients only:

1. **Perfusion VQ-VAE** (:mod:`gliotype.nn.vqvae`), unsupervised: trained on up to ``vqvae_curves``
   tumour-voxel curves of the training patients (stage ``perfusion_input``: curves scaled per voxel by their
   99.5th percentile, or z-scored), then frozen; or a given one (``vqvae_weights``, a safetensors file of
   :class:`~gliotype.nn.vqvae.PerfusionVQVAE`). Its weights are saved in the fold's state, so ``evaluate``
   encodes another cohort with the same codebooks.
2. **Hierarchical graphs** (:mod:`gliotype.prepare.habitat_graph`): 26-connected components of equal code
   are the coarse habitat nodes (mean 768-d latent; kNN + delta_max edges with 9-d cosine features); 3-D
   SLIC on the four structural sequences inside each habitat gives the fine nodes (4-d mean intensity,
   16-d cross-channel similarity edges) and the fine-to-coarse assignment. Cached per patient and VQ-VAE.
3. **Hierarchical GNN** (:mod:`gliotype.nn.hiperf`): PNA + GraphNorm + JK-LSTM on each level, fine
   embeddings mean-pooled into their habitat and concatenated with its feature (eq. 5), mean pool, MLP;
   weighted cross-entropy (focal selectable), one head per task. With ``tasks`` the model also predicts
   the other targets (IDH, 1p/19q, grade in one model): a patient whose label of a task is unknown
   contributes to the other tasks only.

Variants (paper Table 2) are configurations in :data:`VARIANTS`. Deviations from the paper, also in the
README: the VQ-VAE's default encoder is a lean one (``vqvae_encoder="paper"`` gives the authors' size),
trained 5 epochs at lr 1e-3 per fold instead of 100 epochs at 1e-5 once; node features are standardised
on the training fold.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from gliotype.cohort.labels import TARGETS
from gliotype.losses import multitask_loss
from gliotype.methods.brainnet_graphs import split_state
from gliotype.methods.hiperf_graphs import cached_graphs, feature_scale, input_digest, scaled, to_tensors
from gliotype.methods.registry import register_method
from gliotype.methods.torch_method import TorchConfig, TorchMethod, class_weights
from gliotype.nn.hiperf import HierarchicalGNN, HiPerfConfig, collate_hierarchy, degree_histogram
from gliotype.nn.vqvae import PerfusionVQVAE, VQVAEConfig
from gliotype.prepare.perfusion import train_vqvae
from gliotype.train.checkpoint import load_checkpoint, save_checkpoint
from gliotype.train.fit import fit_torch, torch_device

log = logging.getLogger(__name__)

Target = Literal["idh", "codel_1p19q", "grade"]

VARIANTS: dict[str, dict] = {
    # paper Table 2: Perf / Hier / SG
    "perfusion-flat": {"mode": "coarse"},
    "perfusion-hierarchical": {"fine_channels": "kinetic"},
    "structure-only": {"mode": "fine"},
    "full": {},
    # the authors' code where it differs from the paper
    "author-code": {"edge_rule": "radius", "enrich": "sum", "loss": "focal"},
}


class HiPerfGNNConfig(TorchConfig):
    # inputs (stage ``perfusion_input``)
    region: Literal["whole", "core", "enhancing"] = "whole"
    scaling: Literal["p995", "zscore"] = Field("p995", description="per-voxel curve scaling (author code: p995)")
    margin: int = Field(1, ge=0)
    # perfusion VQ-VAE
    vqvae_encoder: Literal["lean", "paper"] = "lean"
    positions: int = Field(3, ge=1, description="latent positions N")
    latent_dim: int = Field(256, ge=1, description="latent size d")
    codebook_size: int = Field(2, ge=2, description="entries K of each position's codebook")
    beta: float = Field(0.25, ge=0)
    vqvae_epochs: int = Field(5, ge=1, description="paper: 100")
    vqvae_lr: float = Field(1e-3, gt=0, description="paper: 1e-5")
    vqvae_batch: int = Field(512, ge=1)
    vqvae_curves: int = Field(50_000, ge=100, description="curves sampled from the training patients")
    vqvae_weights: str | None = Field(None, description="a trained VQ-VAE (.safetensors) to use instead")
    # graphs
    k: int = Field(5, ge=1)
    delta_max: float = Field(15.0, gt=0, description="voxels")
    edge_rule: Literal["knn", "radius"] = Field("knn", description="knn pruned by delta_max (paper) or radius")
    min_habitat_voxels: int = Field(5, ge=1)
    voxels_per_supervoxel: int = Field(30, ge=1)
    compactness: float = Field(0.05, gt=0)
    fine_channels: Literal["structural", "kinetic"] = "structural"
    # network and loss
    mode: Literal["full", "coarse", "fine"] = "full"
    enrich: Literal["concat", "sum"] = "concat"
    hidden: int = Field(64, ge=4)
    layers: int = Field(3, ge=1)
    dropout: float = Field(0.3, ge=0, lt=1)
    loss: Literal["ce", "focal"] = "ce"
    focal_gamma: float = Field(2.0, ge=0)
    tasks: list[Target] = Field(default_factory=list, description="other targets predicted by the same model")
    codel_idh_mutant_only: bool = Field(False, description="train the 1p/19q task on IDH-mutant patients only")
    batch_size: int = Field(8, ge=1)

    @model_validator(mode="after")
    def _consistent(self):
        if self.fine_channels == "kinetic" and self.mode == "fine":
            raise ValueError("fine_channels='kinetic' needs the perfusion hierarchy; mode='fine' is structure-only")
        return self

    def vqvae_config(self) -> VQVAEConfig:
        return VQVAEConfig(positions=self.positions, latent_dim=self.latent_dim, codebook_size=self.codebook_size,
                           beta=self.beta, encoder=self.vqvae_encoder)

    def network_config(self, tasks: dict[str, int], fine_in: int, coarse_in: int) -> HiPerfConfig:
        """The network for node features of these widths (0: the level is absent, as coarse in ``mode="fine"``)."""
        widths = {"fine_in": fine_in, "fine_edge": fine_in * fine_in} if fine_in else {}
        if coarse_in:
            widths.update(coarse_in=coarse_in, coarse_edge=self.positions ** 2)
        return HiPerfConfig(mode=self.mode, enrich=self.enrich, hidden=self.hidden, layers=self.layers,
                            dropout=self.dropout, tasks=tasks, **widths)


@register_method("hiperfgnn", config=HiPerfGNNConfig, modalities=("dsc", "mri", "seg"))
class HiPerfGNN(TorchMethod):
    """VQ-VAE perfusion habitats, structure-guided supervoxels, hierarchical PNA GNN (paper 002)."""

    needs = ("dsc", "mri", "seg")
    stages = ("perfusion_input",)
    keeps_patient_ids = True

    # --- inputs ---------------------------------------------------------------------------------

    def item(self, arrays):
        arrays = arrays["perfusion_input"]
        return {**{k: arrays[k] for k in ("mask", "curves", "structural")}, "input_digest": input_digest(arrays)}

    # --- targets --------------------------------------------------------------------------------

    def tasks(self, target: str) -> tuple[str, ...]:
        return tuple(t for t in self.config.tasks if t != target)

    def label_targets(self, target: str) -> tuple[str, ...]:
        codel = "codel_1p19q" in (target, *self.config.tasks)
        return ("idh",) if self.config.codel_idh_mutant_only and codel and target != "idh" else ()

    def _task_labels(self, y: np.ndarray, aux: dict[str, np.ndarray], target: str) -> np.ndarray:
        """(n, n_tasks) class indices, -1 where unknown (or 1p/19q of an IDH-wildtype patient, if asked)."""
        columns = {target: np.asarray(y), **{t: aux[t] for t in self.tasks(target)}}
        if self.config.codel_idh_mutant_only and "codel_1p19q" in columns:
            idh = columns["idh"] if "idh" in columns else aux["idh"]
            columns["codel_1p19q"] = np.where(idh == TARGETS["idh"].index("mutant"), columns["codel_1p19q"], -1)
        return np.stack([columns[t] for t in self._names], axis=1)

    # --- the network ----------------------------------------------------------------------------

    def build(self, n_classes: int) -> HierarchicalGNN:
        return HierarchicalGNN(self.config.network_config(self._n_classes, *self._dims), *self._deg)

    def collate(self, batch):
        items, ys = zip(*batch)
        out = collate_hierarchy([{k: v for k, v in it.items() if k != "labels"} for it in items])
        if "labels" in items[0]:
            out["labels"] = torch.stack([it["labels"] for it in items])
        return out, torch.tensor(ys)

    def loss(self, model, batch, y, weight):
        out = model(batch)
        labels = {t: batch["labels"][:, j] for j, t in enumerate(self._names)}
        total, _ = multitask_loss(out, labels, {t: self._weights[t].to(y.device) for t in self._names},
                                  kind=self.config.loss, gamma=self.config.focal_gamma)
        return total, out[self._names[0]]

    def logits(self, model, batch):
        return model(batch)[self._names[0]]

    def heads(self, model, batch):
        out = model(batch)
        probs = {f"task:{t}": torch.softmax(out[t].float(), 1) for t in self._names[1:]}
        return {"prediction": torch.softmax(out[self._names[0]].float(), 1), **probs}

    # --- fitting --------------------------------------------------------------------------------

    def fit(self, train, y_train, val, y_val, n_classes, ctx):
        cfg = self.config
        self._names = (ctx.target, *self.tasks(ctx.target))
        self._n_classes = {t: len(TARGETS[t]) for t in self._names}
        vqvae, summary = self._vqvae(train, ctx)
        train_g, val_g = self._graphs(train, vqvae, ctx.device), self._graphs(val, vqvae, ctx.device)
        scale = feature_scale(train_g)
        train_g, val_g = scaled(train_g, scale), scaled(val_g, scale)
        self._set_shapes(train_g)
        labels = self._task_labels(y_train, ctx.aux_train, ctx.target)
        val_labels = self._task_labels(y_val, ctx.aux_val, ctx.target)
        self._weights = {t: class_weights(labels[:, j], self._n_classes[t], cfg.class_weighting)
                         for j, t in enumerate(self._names)}
        train_g = [{**g, "labels": torch.from_numpy(row)} for g, row in zip(train_g, labels)]
        val_g = [{**g, "labels": torch.from_numpy(row)} for g, row in zip(val_g, val_labels)]

        def step(model, batch, y, training):
            return self.loss(model, batch, y, None)

        torch.manual_seed(ctx.seed)
        weights, fit_summary = fit_torch(
            self.build(n_classes), step, self.collate, train_g, y_train, val_g, y_val, work_dir=ctx.work_dir,
            epochs=ctx.epochs or cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=cfg.weight_decay,
            patience=cfg.patience, seed=ctx.seed, device=ctx.device, progress=ctx.progress,
            num_workers=cfg.num_workers, sidecar={"method": self.name}, distributed=ctx.distributed)
        self.fit_summary = {**fit_summary, "vqvae": summary, "tasks": list(self._names)}
        state = {f"model.{k}": v for k, v in weights.items()}
        state.update({f"scale.{k}": v for k, v in scale.items()})
        state["shape.dims"] = torch.tensor(self._dims)
        if vqvae is not None:
            state.update({f"vqvae.{k}": v for k, v in vqvae.state_dict().items()})
        return state

    def _vqvae(self, train, ctx) -> tuple[PerfusionVQVAE | None, dict]:
        """The fold's frozen VQ-VAE (None for the structure-only mode): the given one, or trained on the
        training patients' curves and kept in the fold's work folder so a resumed fold reuses it."""
        cfg = self.config
        if cfg.mode == "fine":
            return None, {}
        path = Path(cfg.vqvae_weights) if cfg.vqvae_weights else ctx.work_dir / "vqvae.safetensors"
        if path.is_file():
            weights, meta = load_checkpoint(path)
            return load_vqvae(cfg.vqvae_config(), weights), {**meta.get("summary", {}), "weights": str(path)}
        if cfg.vqvae_weights:
            raise FileNotFoundError(f"vqvae_weights {cfg.vqvae_weights!r} does not exist; give the path of a "
                                    "VQ-VAE .safetensors file, or leave vqvae_weights unset to train one per fold")
        model, summary = train_vqvae([it["curves"] for it in train], cfg.vqvae_config(), epochs=cfg.vqvae_epochs,
                                     batch_size=cfg.vqvae_batch, lr=cfg.vqvae_lr, max_curves=cfg.vqvae_curves,
                                     seed=ctx.seed, device=torch_device(ctx.device))
        summary = {**summary, "patients": len(train)}
        save_checkpoint(path, model.state_dict(), {"summary": summary, "config": cfg.vqvae_config().model_dump()})
        return model.cpu().eval(), summary

    def _graphs(self, items, vqvae, device="auto") -> list[dict[str, torch.Tensor]]:
        graphs = cached_graphs(items, vqvae, self.config, getattr(self, "_cache", None), str(torch_device(device)))
        return [to_tensors(g) for g in graphs]

    def _set_shapes(self, graphs: list[dict[str, torch.Tensor]]) -> None:
        """Feature widths and the PNA degree histograms (in-degrees of the training graphs, per level; the
        model keeps them as buffers, so a saved state rebuilds it)."""
        first = graphs[0]
        self._dims = tuple(int(first[f"{lv}_x"].shape[1]) if f"{lv}_x" in first else 0 for lv in ("fine", "coarse"))
        self._deg = tuple(_with_an_edge(degree_histogram([g[f"{lv}_edge_index"] for g in graphs],
                                                         [len(g[f"{lv}_x"]) for g in graphs]))
                          if f"{lv}_x" in first else None for lv in ("fine", "coarse"))

    # --- prediction -----------------------------------------------------------------------------

    def load_model(self, state, n_classes, device="auto"):
        parts = split_state(state)
        self._dims = tuple(int(v) for v in parts["shape"]["dims"])
        config = self.config.network_config(self._n_classes, *self._dims)
        return HierarchicalGNN.from_state_dict(config, parts["model"]).to(torch_device(device)).eval()

    def graphs(self, state, inputs, device="auto") -> list[dict[str, torch.Tensor]]:
        """The standardised graphs of ``inputs`` under the state's VQ-VAE."""
        parts = split_state(state)
        vqvae = load_vqvae(self.config.vqvae_config(), parts["vqvae"]) if "vqvae" in parts else None
        return scaled(self._graphs(inputs, vqvae, device), parts["scale"])

    def predict_heads(self, state, inputs, n_classes, device="auto"):
        return super().predict_heads(state, self.graphs(state, inputs, device), n_classes, device)

    def sidecar(self) -> dict:
        return {"tasks": list(self._names)}

    def restore(self, sidecar: dict) -> None:
        self._names = tuple(sidecar["tasks"])
        self._n_classes = {t: len(TARGETS[t]) for t in self._names}


def load_vqvae(config: VQVAEConfig, weights: dict[str, torch.Tensor]) -> PerfusionVQVAE:
    model = PerfusionVQVAE(config)
    model.load_state_dict(weights)
    return model.eval()


def _with_an_edge(histogram: torch.Tensor) -> torch.Tensor:
    """A degree histogram with at least one node of degree 1. When no training graph of a level has an edge
    (every tumour a single habitat), PNA's degree scalers would divide by a mean log-degree of 0; the
    aggregations of edgeless nodes are zero whatever the scaler, so one pretended degree-1 node changes nothing
    else."""
    if histogram[1:].sum() > 0:
        return histogram
    out = torch.zeros(2, dtype=histogram.dtype)
    out[: len(histogram)] = histogram[:2]
    out[1] = 1
    return out
