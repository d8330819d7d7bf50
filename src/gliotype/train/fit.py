"""The one fitting loop for torch methods: Lightning, early stopping on a validation split, resumable.

Every epoch ends by writing ``work_dir/last.safetensors`` (model, optimizer, early-stopping state) and,
when the validation loss improved, ``work_dir/best.safetensors``. A killed fit, rerun with the same
``work_dir``, restores the last epoch and runs only the remaining ones. The same code runs on CPU, on a
GPU, and under DDP (Lightning's strategy, :class:`~gliotype.methods.base.Distributed`), the device chosen at
run time.

Under DDP (``devices``/``num_nodes`` > 1, or started by ``torchrun``, which Lightning detects) every process
draws the same seeded order of training patients and takes every world-size-th one (:class:`FitLoaders`),
so an optimiser step sees the patients one process with ``world_size`` times the batch would see, and DDP
averages the gradients. The validation loss is averaged over the patients of all ranks before early
stopping, so every rank stops in the same epoch; only rank 0 writes the checkpoints, and every rank reads
the best weights after a barrier. ``batch_size`` is per process.
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
from lightning_utilities.core.apply_func import apply_to_collection
from torch import nn
from torch.utils.data import Dataset

from gliotype.methods.base import Distributed
from gliotype.train.parallel import FitLoaders, check_hardware, use_channels_last
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
                 schedule: str = "constant", total_epochs: int = 1, start_epoch: int = 0, channels_last: bool = False):
        super().__init__()
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown learning-rate schedule {schedule!r}; choose one of {SCHEDULES}")
        self.model, self._step = model, step
        self.lr, self.weight_decay = lr, weight_decay
        self.schedule, self.total_epochs, self.start_epoch = schedule, max(total_epochs, 1), start_epoch
        self.channels_last = channels_last
        self.val_losses: list[tuple[float, int]] = []
        """This rank's (``loss * batch size``, batch size) of each validation batch of the epoch."""

    def on_train_epoch_start(self):
        if self.schedule == "cosine":
            epoch = self.start_epoch + self.current_epoch
            for group in self.trainer.optimizers[0].param_groups:
                group["lr"] = self.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / self.total_epochs))

    def training_step(self, batch, _):
        inputs, y = batch
        loss, _ = self._step(self.model, self._format(inputs), y, True)
        self.log("train_loss", loss, prog_bar=True, batch_size=len(y))
        return loss

    def validation_step(self, batch, _):
        inputs, y = batch
        loss, _ = self._step(self.model, self._format(inputs), y, False)
        self.val_losses.append((float(loss) * len(y), len(y)))
        self.log("val_loss", loss, prog_bar=True, batch_size=len(y), sync_dist=True)

    def _format(self, inputs):
        """``inputs`` with every 5-D tensor (B, C, D, H, W) channels-last when asked, else as they are."""
        if not self.channels_last:
            return inputs
        return apply_to_collection(inputs, torch.Tensor, lambda t: t.contiguous(memory_format=torch.channels_last_3d)
                                   if t.dim() == 5 else t)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)


class EpochState(L.Callback):
    """Early stopping with patience, best weights, and a resumable checkpoint written every epoch.

    The validation loss is the mean over the patients of every rank (each rank's sum and count are summed
    across ranks), so all ranks take the same decision; rank 0 alone writes, and :meth:`on_train_end` waits
    for it.
    """

    def __init__(self, work_dir: Path, patience: int, start_epoch: int, best: float, wait: int, sidecar: dict):
        self.work_dir, self.patience = work_dir, patience
        self.epoch, self.best, self.wait, self.sidecar = start_epoch, best, wait, sidecar

    def on_validation_epoch_start(self, trainer, module):
        module.val_losses = []

    def on_train_epoch_end(self, trainer, module):
        if trainer.sanity_checking:
            return
        self.epoch += 1
        val = validation_loss(trainer, module)
        improved = not np.isfinite(val) or val < self.best - 1e-6  # no validation patients: keep the latest weights
        if improved:
            self.best, self.wait = (val if np.isfinite(val) else self.best), 0
        else:
            self.wait += 1
        if trainer.is_global_zero:
            self._save(trainer, module, val, improved)
        if self.wait >= self.patience:
            trainer.should_stop = True

    def on_train_end(self, trainer, module):
        trainer.strategy.barrier("gliotype-best-checkpoint")  # other ranks read best.safetensors after this

    def _save(self, trainer, module, val: float, improved: bool) -> None:
        if improved:
            save_checkpoint(self.work_dir / "best.safetensors", module.model.state_dict(),
                            {**self.sidecar, "epoch": self.epoch, "val_loss": val})
        opt_tensors, opt_meta = optimizer_tensors(trainer.optimizers[0])
        tensors = {**{f"model.{k}": v for k, v in module.model.state_dict().items()}, **opt_tensors}
        save_checkpoint(self.work_dir / "last.safetensors", tensors,
                        {**self.sidecar, "epoch": self.epoch, "best": self.best, "wait": self.wait,
                         "optimizer": opt_meta, "val_loss": val})
        log.info("epoch %d: val loss %.4f (best %.4f, wait %d)", self.epoch, val, self.best, self.wait)


def validation_loss(trainer: L.Trainer, module: Classifier) -> float:
    """The epoch's mean validation loss over the patients of all ranks (NaN without validation patients)."""
    local = torch.tensor([sum(s for s, _ in module.val_losses), sum(n for _, n in module.val_losses)],
                         dtype=torch.float64)
    total, count = trainer.strategy.reduce(local.to(module.device), reduce_op="sum").tolist()
    return total / count if count else float("nan")


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
              precision: str = "32", distributed: Distributed | None = None,
              memory_format: str = "contiguous") -> tuple[dict[str, torch.Tensor], dict]:
    """Fit ``model``; returns the best weights and a summary (epochs run, resumed from, best val loss).

    ``schedule``: the learning rate per epoch (:class:`Classifier`); ``precision``: Lightning's, e.g. ``"32"`` or
    ``"bf16-mixed"`` (autocast to bfloat16, on CPU too); ``distributed``: processes and Lightning strategy (one
    process by default; ``batch_size`` is per process); ``memory_format``: ``"channels_last_3d"`` puts the
    conv weights and 5-D inputs channels-last on CUDA, and is ignored (contiguous) on other devices.
    Every rank of a DDP fit returns the same best weights.
    """
    distributed = distributed or Distributed()
    check_hardware(distributed, memory_format)
    work_dir.mkdir(parents=True, exist_ok=True)
    sidecar = dict(sidecar or {})
    L.seed_everything(seed, workers=True, verbose=False)
    channels_last = use_channels_last(memory_format, accelerator(device) == "gpu")
    module = Classifier(model.to(memory_format=torch.channels_last_3d) if channels_last else model, step, lr,
                        weight_decay, schedule, epochs, channels_last=channels_last)
    start, best, wait, opt_state = _resume_point(work_dir, module, sidecar.get("method"))
    module.start_epoch = start
    summary = {"resumed_from_epoch": start, "epochs_planned": epochs}
    remaining = epochs - start
    if remaining > 0 and wait < patience:
        state = EpochState(work_dir, patience, start, best, wait, sidecar)
        callbacks = [state] if opt_state is None else [_OptimizerRestore(*opt_state), state]
        pin = accelerator(device) == "gpu"  # page-locked batches: faster, asynchronous copies to the GPU
        data = FitLoaders(ItemDataset(train, y_train), ItemDataset(val, y_val), seed + start, batch_size=batch_size,
                          collate_fn=collate, num_workers=num_workers, pin_memory=pin)
        trainer = L.Trainer(max_epochs=remaining, accelerator=accelerator(device), devices=distributed.devices,
                            num_nodes=distributed.num_nodes, strategy=distributed.strategy, logger=False,
                            enable_checkpointing=False, enable_progress_bar=progress, enable_model_summary=False,
                            num_sanity_val_steps=0, callbacks=callbacks, deterministic="warn", precision=precision)
        with warnings.catch_warnings():  # Lightning's own deprecation chatter, not the user's concern
            warnings.filterwarnings("ignore", message=r".*(LeafSpec|does not have many workers|deterministic).*")
            trainer.fit(module, datamodule=data)
        summary.update(epochs_run=state.epoch, best_val_loss=state.best, world_size=trainer.world_size)
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
