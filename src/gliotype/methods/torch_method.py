"""Base of the methods that train a torch network through :func:`gliotype.train.fit.fit_torch`."""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path

import numpy as np
import torch
from pydantic import Field
from torch import nn

from gliotype.cohort import Cohort
from gliotype.methods.base import FitContext, Method, MethodConfig, Prepared
from gliotype.methods.lazy import LazyItems
from gliotype.prepare import get_stage, run_stage
from gliotype.prepare.stage import default_cache
from gliotype.train.fit import fit_torch, torch_device


class TorchConfig(MethodConfig):
    """Training settings shared by torch methods (the paper's values where METHODS.md gives them)."""

    epochs: int = Field(30, ge=1)
    batch_size: int = Field(4, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    patience: int = Field(10, ge=1, description="epochs without validation improvement before stopping")
    class_weighting: bool = True
    num_workers: int = Field(0, ge=0)


class TorchMethod(Method):
    """A method whose inputs come from cached stages and whose model is a torch ``nn.Module``.

    Subclasses set ``stages`` and implement :meth:`build` and :meth:`item`. The defaults: :meth:`collate`
    stacks items, :meth:`logits` calls ``model(batch["image"])``, :meth:`loss` is the (class-weighted)
    cross-entropy of those logits, and :meth:`heads` is their softmax. A method with several heads
    overrides :meth:`loss` and :meth:`heads`.
    """

    stages: tuple[str, ...] = ()
    keeps_patient_ids: bool = False
    """Whether each item carries its ``patient_id`` (for per-patient caches of data derived in ``fit``, such as
    ``brainnet``'s networks and ``hiperfgnn``'s graphs, kept under the cohort's cache folder ``self._cache``)."""
    lazy_inputs: bool = False
    """Whether :meth:`prepare` returns inputs built from the cache on access (:class:`LazyItems`, each patient's
    large arrays memory-mapped) instead of all at once: for methods whose items are large and cheap to build,
    such as the 3-D tumour cubes, so that an epoch never holds the cohort in RAM. Their :meth:`item` gets
    read-only memory maps and copies what it keeps (``array.astype(...)`` does)."""

    def stage_config(self, stage: str):
        """The configuration of one of this method's stages, taken from matching method config fields."""
        config_type = get_stage(stage).config_type
        shared = {k: getattr(self.config, k) for k in config_type.model_fields if k in type(self.config).model_fields}
        return config_type(**shared)

    def prepare(self, cohort: Cohort, patient_ids, cache_dir: Path | None = None, workers: int = 1,
                progress: bool = False) -> Prepared:
        self._cache = Path(cache_dir) if cache_dir else default_cache(cohort)
        ready, failed = list(patient_ids), {}
        paths: dict[str, dict[str, Path]] = {p: {} for p in patient_ids}
        for stage in self.stages:
            result = run_stage(stage, cohort, ready, self.stage_config(stage), cache_dir, workers, progress)
            failed.update(result.failed)
            ready = [p for p in ready if p in result.done]
            for pid in ready:
                paths[pid][stage] = result.done[pid]
        inputs = LazyItems({p: paths[p] for p in ready}, self.item, self.keeps_patient_ids, mmap=self.lazy_inputs)
        if not self.lazy_inputs:
            inputs = dict(inputs.items())  # every item built now, from arrays read whole
        fingerprint = {s: self.stage_config(s).model_dump() for s in self.stages}
        return Prepared(inputs, failed, fingerprint)

    @abstractmethod
    def build(self, n_classes: int) -> nn.Module:
        """A freshly initialised network."""

    @abstractmethod
    def item(self, arrays: dict[str, dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
        """One patient's tensors from the arrays of each stage."""

    def collate(self, batch: list) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Stack items (dicts of equal-shape tensors) and labels."""
        items, ys = zip(*batch)
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}, torch.tensor(ys)

    def logits(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(batch["image"])

    def augment(self, batch: dict[str, torch.Tensor], y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training-time augmentation of a batch; none by default."""
        return batch

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor], y: torch.Tensor,
             weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(training loss, logits of the prediction) of a batch; ``weight`` holds the class weights."""
        logits = self.logits(model, batch)
        return nn.functional.cross_entropy(logits, y, weight=weight.to(logits.device)), logits

    def heads(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Class probabilities (B, n_classes) of the method's prediction (key ``"prediction"``) and of any
        other head it exposes."""
        return {"prediction": torch.softmax(self.logits(model, batch).float(), dim=1)}

    def fit(self, train, y_train, val, y_val, n_classes, ctx: FitContext) -> dict[str, torch.Tensor]:
        weight = class_weights(np.asarray(y_train), n_classes, self.config.class_weighting)

        def step(model, batch, y, training):
            if training:
                batch = self.augment(batch, y)
            return self.loss(model, batch, y, weight)

        torch.manual_seed(ctx.seed)
        cfg = self.config
        weights, self.fit_summary = fit_torch(
            self.build(n_classes), step, self.collate, train, y_train, val, y_val, work_dir=ctx.work_dir,
            epochs=ctx.epochs or cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=cfg.weight_decay,
            patience=cfg.patience, seed=ctx.seed, device=ctx.device, progress=ctx.progress,
            num_workers=cfg.num_workers, sidecar={"method": self.name},
            distributed=ctx.distributed, memory_format=ctx.memory_format)
        return weights

    def image_learner(self, model: nn.Module) -> nn.Module | None:
        """The sub-network that reads the tumour cube and predicts from it alone (for Grad-CAM), if any."""
        return None

    def point_learner(self, model: nn.Module) -> nn.Module | None:
        """The sub-network that reads the tumour points and predicts from them alone (for GNNExplainer), if any."""
        return None

    def load_model(self, state: dict[str, torch.Tensor], n_classes: int, device: str = "auto") -> nn.Module:
        """The network with ``state`` loaded, in eval mode, on the device ``device`` resolves to."""
        model = self.build(n_classes)
        model.load_state_dict(state)
        return model.to(torch_device(device)).eval()

    @torch.no_grad()
    def predict_heads(self, state, inputs, n_classes, device="auto") -> dict[str, np.ndarray]:
        model = self.load_model(state, n_classes, device)
        dev = next(model.parameters()).device
        out: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(inputs), self.config.batch_size):
            batch, _ = self.collate([(it, -1) for it in inputs[start:start + self.config.batch_size]])
            for head, prob in self.heads(model, {k: v.to(dev) for k, v in batch.items()}).items():
                out.setdefault(head, []).append(prob.float().cpu().numpy())
        return {head: np.concatenate(p).astype(np.float64) for head, p in out.items()}

    def predict_proba(self, state, inputs, n_classes, device="auto") -> np.ndarray:
        return self.predict_heads(state, inputs, n_classes, device)["prediction"]


def class_weights(labels: np.ndarray, n_classes: int, weighting: bool = True) -> torch.Tensor:
    """Inverse-frequency weights of the known labels (>= 0), ``n / (C * count)``; ones without weighting."""
    known = labels[labels >= 0]
    if not weighting or not len(known):
        return torch.ones(n_classes)
    counts = np.bincount(known, minlength=n_classes).astype(float)
    return torch.tensor(len(known) / (n_classes * np.maximum(counts, 1)), dtype=torch.float32)
