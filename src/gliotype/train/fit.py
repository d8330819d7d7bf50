"""The one fitting loop for torch methods: Lightning, early stopping on a validation split, resumable.

Every epoch ends by writing ``work_dir/last.safetensors`` (model, optimizer, early-stopping state) and,
when the validation loss improved, ``work_dir/best.safetensors``. A killed fit, rerun with the same
``work_dir``, restores the last epoch and runs only the remaining ones. The same code runs on CPU, on a
GPU, and under DDP (Lightning's strategy), the device chosen at run time.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from gliotype.train.checkpoint import load_checkpoint, optimizer_tensors, restore_optimizer, save_checkpoint

log = logging.getLogger(__name__)

SCHEDULES = ("constant", "cosine")


class ItemDataset(Dataset):
    """Per-patient items and their class indices."""

    def __init__(self, items: list, y: np.ndarray | None = None):
        self.items, self.y = items, y

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i], (-1 if self.y is None else int(self.y[i]))


class Classifier(L.LightningModule):
    """Wraps a method's network: ``step(model, batch, y, train)`` returns (loss, logits).

    ``schedule="cosine"`` anneals the learning rate per epoch from ``lr`` towards 0 over ``total_epochs``
    (``lr * (1 + cos(pi * e / total_epochs)) / 2`` in epoch ``e``, counted from the fit's first epoch, so a
    resumed fit continues the same curve); ``"constant"`` keeps ``lr``.
    """

    def __init__(self, model: nn.Module, step: Callable, lr: float, weight_decay: float,
                 schedule: str = "constant", total_epochs: int = 1, start_epoch: int = 0):
        super().__init__()
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown learning-rate schedule {schedule!r}; choose one of {SCHEDULES}")
        self.model, self._step = model, step
        self.lr, self.weight_decay = lr, weight_decay
        self.schedule, self.total_epochs, self.start_epoch = schedule, max(total_epochs, 1), start_epoch
        self.val_losses: list[float] = []

    def on_train_epoch_start(self):
        if self.schedule == "cosine":
            epoch = self.start_epoch + self.current_epoch
            for group in self.trainer.optimizers[0].param_groups:
                group["lr"] = self.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / self.total_epochs))

    def training_step(self, batch, _):
        inputs, y = batch
        loss, _ = self._step(self.model, inputs, y, True)
        self.log("train_loss", loss, prog_bar=True, batch_size=len(y))
        return loss

    def validation_step(self, batch, _):
        inputs, y = batch
        loss, _ = self._step(self.model, inputs, y, False)
        self.val_losses.append(float(loss) * len(y))
        self.log("val_loss", loss, prog_bar=True, batch_size=len(y))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)


class EpochState(L.Callback):
    """Early stopping with patience, best weights, and a resumable checkpoint written every epoch."""

    def __init__(self, work_dir: Path, patience: int, n_val: int, start_epoch: int, best: float, wait: int,
                 sidecar: dict):
        self.work_dir, self.patience, self.n_val = work_dir, patience, max(n_val, 1)
        self.epoch, self.best, self.wait, self.sidecar = start_epoch, best, wait, sidecar

    def on_validation_epoch_start(self, trainer, module):
        module.val_losses = []

    def on_train_epoch_end(self, trainer, module):
        if trainer.sanity_checking:
            return
        self.epoch += 1
        val = sum(module.val_losses) / self.n_val if module.val_losses else float("nan")
        if not np.isfinite(val) or val < self.best - 1e-6:  # no validation patients: keep the latest weights
            self.best, self.wait = (val if np.isfinite(val) else self.best), 0
            save_checkpoint(self.work_dir / "best.safetensors", module.model.state_dict(),
                            {**self.sidecar, "epoch": self.epoch, "val_loss": val})
        else:
            self.wait += 1
        opt_tensors, opt_meta = optimizer_tensors(trainer.optimizers[0])
        tensors = {**{f"model.{k}": v for k, v in module.model.state_dict().items()}, **opt_tensors}
        save_checkpoint(self.work_dir / "last.safetensors", tensors,
                        {**self.sidecar, "epoch": self.epoch, "best": self.best, "wait": self.wait,
                         "optimizer": opt_meta, "val_loss": val})
        log.info("epoch %d: val loss %.4f (best %.4f, wait %d)", self.epoch, val, self.best, self.wait)
        if self.wait >= self.patience:
            trainer.should_stop = True


def torch_device(device: str) -> torch.device:
    """The torch device that ``device`` (``auto``, ``cpu``, ``cuda``) resolves to on this machine."""
    return torch.device("cuda" if accelerator(device) == "gpu" else "cpu")


def accelerator(device: str) -> str:
    if device == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    return {"cuda": "gpu"}.get(device, device)


def fit_torch(model: nn.Module, step: Callable, collate: Callable, train: list, y_train: np.ndarray,
              val: list, y_val: np.ndarray, *, work_dir: Path, epochs: int, batch_size: int, lr: float,
              weight_decay: float, patience: int, seed: int, device: str = "auto", progress: bool = False,
              num_workers: int = 0, sidecar: dict | None = None, schedule: str = "constant",
              precision: str = "32") -> tuple[dict[str, torch.Tensor], dict]:
    """Fit ``model``; returns the best weights and a summary (epochs run, resumed from, best val loss).

    ``schedule``: the learning rate per epoch (:class:`Classifier`); ``precision``: Lightning's, e.g. ``"32"`` or
    ``"bf16-mixed"`` (autocast to bfloat16, on CPU too).
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    sidecar = dict(sidecar or {})
    L.seed_everything(seed, workers=True, verbose=False)
    module = Classifier(model, step, lr, weight_decay, schedule, epochs)
    start, best, wait, opt_state = _resume_point(work_dir, module, sidecar.get("method"))
    module.start_epoch = start
    summary = {"resumed_from_epoch": start, "epochs_planned": epochs}
    remaining = epochs - start
    if remaining > 0 and wait < patience:
        state = EpochState(work_dir, patience, len(val), start, best, wait, sidecar)
        callbacks = [state] if opt_state is None else [_OptimizerRestore(*opt_state), state]
        generator = torch.Generator().manual_seed(seed + start)
        loaders = [DataLoader(ItemDataset(train, y_train), batch_size=batch_size, shuffle=True, collate_fn=collate,
                              generator=generator, num_workers=num_workers, drop_last=len(train) > batch_size),
                   DataLoader(ItemDataset(val, y_val), batch_size=batch_size, collate_fn=collate, num_workers=num_workers)]
        trainer = L.Trainer(max_epochs=remaining, accelerator=accelerator(device), devices=1, logger=False,
                            enable_checkpointing=False, enable_progress_bar=progress, enable_model_summary=False,
                            num_sanity_val_steps=0, callbacks=callbacks, deterministic="warn", precision=precision)
        with warnings.catch_warnings():  # Lightning's own deprecation chatter, not the user's concern
            warnings.filterwarnings("ignore", message=r".*(LeafSpec|does not have many workers|deterministic).*")
            trainer.fit(module, *loaders)
        summary.update(epochs_run=state.epoch, best_val_loss=state.best)
    best_weights, best_meta = load_checkpoint(work_dir / "best.safetensors")
    summary.setdefault("epochs_run", start)
    summary["best_epoch"] = best_meta["epoch"]
    return best_weights, summary


class _OptimizerRestore(L.Callback):
    def __init__(self, tensors, meta):
        self.tensors, self.meta = tensors, meta

    def on_train_start(self, trainer, module):
        restore_optimizer(trainer.optimizers[0], self.tensors, self.meta)


def _resume_point(work_dir: Path, module: Classifier, method: str | None):
    """(epoch, best, wait, optimizer state) of an interrupted fit in ``work_dir``, or a fresh start."""
    last = work_dir / "last.safetensors"
    if not (last.is_file() and last.with_suffix(".json").is_file() and (work_dir / "best.json").is_file()):
        return 0, float("inf"), 0, None
    tensors, meta = load_checkpoint(last, expect_method=method)
    module.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    log.info("resuming %s from epoch %d", work_dir, meta["epoch"])
    return meta["epoch"], meta["best"], meta["wait"], (tensors, meta["optimizer"])
